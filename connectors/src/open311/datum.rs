//! Coordinates: GeoReport v2 clients send WGS-84 (GPS) positions, while maps and city data in
//! China use GCJ-02 (the sample city does). The hub converts at the edge so places resolve
//! against the city's own boundaries; the offset is several hundred metres, enough to put
//! a request in the wrong community.
//!
//! The conversion is the widely published GCJ-02 formula; outside China it is the identity.
//! The reverse is solved by iteration (accurate to well under a metre).

use std::f64::consts::PI;

/// Which datum a client's coordinates use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Datum {
    /// GPS coordinates, as the GeoReport v2 specification says.
    #[default]
    Wgs84,
    /// Chinese map coordinates (Amap, Tencent maps, WeChat).
    Gcj02,
}

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

fn outside_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    ret
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

/// WGS-84 (lon, lat) to GCJ-02.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let d_lat = transform_lat(lon - 105.0, lat - 35.0);
    let d_lon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (lon + d_lon, lat + d_lat)
}

/// GCJ-02 (lon, lat) back to WGS-84, for showing a request where the client expects it.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    let (mut x, mut y) = (lon, lat);
    for _ in 0..10 {
        let (gx, gy) = wgs84_to_gcj02(x, y);
        x -= gx - lon;
        y -= gy - lat;
    }
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luzhou_shifts_by_hundreds_of_metres_and_converts_back() {
        let (lon, lat) = (105.4345, 28.9012);
        let (glon, glat) = wgs84_to_gcj02(lon, lat);
        // Roughly 300-700 m east/north of the GPS position in Sichuan.
        let metres = ((glon - lon) * 97_000.0).hypot((glat - lat) * 111_000.0);
        assert!((200.0..800.0).contains(&metres), "{metres}");
        let (blon, blat) = gcj02_to_wgs84(glon, glat);
        assert!((blon - lon).abs() < 1e-7 && (blat - lat).abs() < 1e-7);
        assert_eq!(wgs84_to_gcj02(-122.4, 37.7), (-122.4, 37.7));
    }
}
