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
/// so a crash leaves either the old or the new file. Safe for concurrent use within one
/// process; two processes must not share a file.
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
        let file = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::CorruptFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let empty = RegistryFile::default();
                write_atomically(&path, &empty)?;
                empty
            }
            Err(source) => {
                return Err(RegistryError::File {
                    action: "reading",
                    path,
                    source,
                })
            }
        };
        let state = State::load(file).map_err(|reason| RegistryError::CorruptFile {
            path: path.clone(),
            reason,
        })?;
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

    /// The schema registered as `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .schema_by_id
            .get(&id)
            .cloned()
            .ok_or(RegistryError::SchemaNotFound { id })
    }
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
