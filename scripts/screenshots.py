#!/usr/bin/env python3
"""Screenshots of the web console of a running hub (e.g. `./scripts/demo`), taken with the
system's headless Chromium over WebDriver (Debian: chromium, chromium-driver).

    python3 scripts/screenshots.py http://127.0.0.1:8080 demo-community-510504001001 docs/

Signs in with the token, then saves queue.png, map.png and task.png (the queue's first
task) at 1366x768, the office screen the console is made for."""
import base64, json, os, subprocess, sys, time, urllib.request

def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}").get("value")

def main():
    hub, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    port = 9515 + os.getpid() % 1000
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wd = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                call(wd, "GET", "/status"); break
            except Exception:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,768", "--lang=zh-CN"]}}}}
        sid = call(wd, "POST", "/session", caps)["sessionId"]
        s = f"/session/{sid}"
        def find(css):
            return list(call(wd, "POST", s + "/element", {"using": "css selector", "value": css}).values())[0]
        def shot(name):
            time.sleep(0.8)
            png = call(wd, "GET", s + "/screenshot")
            open(os.path.join(out, name), "wb").write(base64.b64decode(png))
            print("saved", os.path.join(out, name))
        call(wd, "POST", s + "/url", {"url": hub + "/login"})
        el = find("#token")
        call(wd, "POST", s + f"/element/{el}/value", {"text": token})
        call(wd, "POST", s + f"/element/{find('form button[type=submit]')}/click", {})
        time.sleep(1.0)
        shot("queue.png")
        call(wd, "POST", s + "/url", {"url": hub + "/map"})
        time.sleep(1.5)
        shot("map.png")
        call(wd, "POST", s + "/url", {"url": hub + "/queue"})
        time.sleep(1.0)
        link = find("table.queue a")
        call(wd, "POST", s + f"/element/{link}/click", {})
        shot("task.png")
        call(wd, "DELETE", s)
    finally:
        driver.terminate()

main()
