//! A schema registry kept in a JSON file, for one hub process.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use super::{schema_text, RegistryError};

/// Ids are assigned like Confluent's registry does: one id per distinct schema (shared by every
/// subject it is registered under), counting up from 1, and an id never changes once written.
///
/// The file is rewritten atomically (temporary file, fsync, rename) on every new registration,
/// so a crash leaves either the old or the new file. Several hub processes on one machine may
/// share the file (a connector process and a router process, say): a registration holds an
/// exclusive lock on `<file>.lock` and re-reads the file first, and a lookup that misses
/// re-reads it, so an id registered by another process is found.
#[derive(Debug)]
pub struct LocalRegistry {
    path: PathBuf,
    state: Mutex<State>,
}

/// The file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RegistryFile {
    /// In id order.
    schemas: Vec<StoredSchema>,
    /// Subject → ids of its versions, oldest first.
    subjects: BTreeMap<String, Vec<u32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSchema {
    id: u32,
    schema: String,
}

#[derive(Debug)]
struct State {
    file: RegistryFile,
    id_by_text: HashMap<String, u32>,
    schema_by_id: HashMap<u32, Arc<Schema>>,
}

impl LocalRegistry {
    /// Opens the registry file at `path`, creating it (and its directory) if it does not exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let path = path.into();
        // Another process may be creating the same file right now.
        let _lock = lock_file(&path)?;
        if !path.exists() {
            write_atomically(&path, &RegistryFile::default())?;
        }
        let state = read_state(&path)?;
        Ok(LocalRegistry {
            path,
            state: Mutex::new(state),
        })
    }

    /// The file this registry keeps its ids in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers `schema` under `subject` and returns its id; see [`LocalRegistry`] for how ids
    /// are assigned. Writes the file only when something new was registered.
    pub fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let text = schema_text(schema)?;
        // Held across the file write so that two registrations cannot hand out the same id;
        // registrations are rare (once per subject and process), so the short block is fine.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The same between processes; the lock ends when `_lock` is dropped.
        let _lock = lock_file(&self.path)?;
        *state = read_state(&self.path)?;
        let known = state.id_by_text.get(&text).copied();
        if let Some(id) = known {
            if state
                .file
                .subjects
                .get(subject)
                .is_some_and(|v| v.contains(&id))
            {
                return Ok(id);
            }
        }
        let id = match known {
            Some(id) => id,
            None => state
                .file
                .schemas
                .last()
                .map_or(Some(1), |s| s.id.checked_add(1))
                .ok_or_else(|| RegistryError::IdsExhausted {
                    path: self.path.clone(),
                })?,
        };

        // Memory is updated only after the file is written, so an id is never handed out
        // that a restart would not remember.
        let mut file = state.file.clone();
        if known.is_none() {
            file.schemas.push(StoredSchema {
                id,
                schema: text.clone(),
            });
        }
        file.subjects
            .entry(subject.to_owned())
            .or_default()
            .push(id);
        write_atomically(&self.path, &file)?;

        state.file = file;
        if known.is_none() {
            state.id_by_text.insert(text, id);
            state.schema_by_id.insert(id, Arc::new(schema.clone()));
        }
        Ok(id)
    }

    /// The schema registered as `id` (by this or another process).
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(schema) = state.schema_by_id.get(&id) {
            return Ok(schema.clone());
        }
        *state = read_state(&self.path)?;
        state
            .schema_by_id
            .get(&id)
            .cloned()
            .ok_or(RegistryError::SchemaNotFound { id })
    }
}

/// Reads and checks the file.
fn read_state(path: &Path) -> Result<State, RegistryError> {
    let bytes = fs::read(path).map_err(|source| RegistryError::File {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    let corrupt = |reason: String| RegistryError::CorruptFile {
        path: path.to_owned(),
        reason,
    };
    let file = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    State::load(file).map_err(corrupt)
}

/// An exclusive lock on `<file>.lock` (shared by every process using the file), released
/// when the returned file is dropped. Creates the file's directory if needed.
fn lock_file(path: &Path) -> Result<fs::File, RegistryError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file_error = |source| RegistryError::File {
        action: "locking",
        path: lock_path.clone(),
        source,
    };
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(file_error)?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(file_error)?;
    file.lock().map_err(file_error)?;
    Ok(file)
}

impl State {
    /// Checks a file read from disk and indexes it; the error says what is inconsistent.
    fn load(file: RegistryFile) -> Result<State, String> {
        let mut id_by_text = HashMap::new();
        let mut schema_by_id = HashMap::new();
        let mut previous_id = 0;
        for stored in &file.schemas {
            if stored.id <= previous_id {
                return Err(format!(
                    "schema ids must be distinct, from 1 and in increasing order; {} follows {}",
                    stored.id, previous_id
                ));
            }
            previous_id = stored.id;
            let schema = Schema::parse_str(&stored.schema)
                .map_err(|e| format!("schema {} is not a valid Avro schema: {e}", stored.id))?;
            if let Some(other) = id_by_text.insert(stored.schema.clone(), stored.id) {
                return Err(format!(
                    "schemas {other} and {} are the same schema",
                    stored.id
                ));
            }
            schema_by_id.insert(stored.id, Arc::new(schema));
        }
        for (subject, ids) in &file.subjects {
            if let Some(id) = ids.iter().find(|id| !schema_by_id.contains_key(id)) {
                return Err(format!(
                    "subject `{subject}` refers to schema {id}, which is not in the file"
                ));
            }
        }
        Ok(State {
            file,
            id_by_text,
            schema_by_id,
        })
    }
}

/// Replaces `path` with `file` so that a crash at any point leaves the old or the new content.
fn write_atomically(path: &Path, file: &RegistryFile) -> Result<(), RegistryError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let write = || -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(file)?;
        let mut out = fs::File::create(&temp)?;
        out.write_all(&json)?;
        out.sync_all()?;
        fs::rename(&temp, path)?;
        // Make the rename itself durable.
        #[cfg(unix)]
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    };
    write().map_err(|source| {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = fs::remove_file(&temp);
        RegistryError::File {
            action: "writing",
            path: path.to_owned(),
            source,
        }
    })
}
