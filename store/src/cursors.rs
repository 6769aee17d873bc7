//! Where each pull connector stopped, as it last saved it.

use chrono::Utc;

use crate::store::Store;
use crate::StoreError;

const SELECT_CURSOR: &str = "SELECT cursor FROM connector_cursors WHERE connector = $1";
const SAVE_CURSOR: &str = "INSERT INTO connector_cursors (connector, cursor, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (connector) DO UPDATE SET cursor = excluded.cursor, \
     updated_at = excluded.updated_at";

pub(crate) async fn load_cursor(
    store: &Store,
    connector: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(SELECT_CURSOR)
        .bind(connector)
        .fetch_optional(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("load cursor of connector {connector}")
        }))
}

pub(crate) async fn save_cursor(
    store: &Store,
    connector: &str,
    cursor: &str,
) -> Result<(), StoreError> {
    sqlx::query(SAVE_CURSOR)
        .bind(connector)
        .bind(cursor)
        .bind(Utc::now().timestamp_millis())
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("save cursor of connector {connector}")
        }))?;
    Ok(())
}
