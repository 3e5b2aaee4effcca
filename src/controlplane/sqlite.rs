//! The embedded store: SQLite in WAL mode, in the control plane's state
//! directory (`onprem.db`). Nothing to install; a restart loses nothing
//! committed (`synchronous=FULL`).
//!
//! Records are JSON documents in tables keyed by what is looked up;
//! telemetry samples are rows. Migrations are numbered SQL scripts run in
//! order at open, tracked by `PRAGMA user_version`; to change the schema,
//! append one to [`MIGRATIONS`] (never edit a released one).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{
    Alert, AuditEntry, Device, Error, Event, Kind, Object, Result, Revision, Rollout, Store,
    StoredSample, Token, User, Write,
};

/// The schema, one script per version.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE objects (
        kind TEXT NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL,
        PRIMARY KEY (kind, name));
     CREATE TABLE devices (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, fingerprint TEXT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX devices_fingerprint ON devices (fingerprint);
     CREATE TABLE tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
     CREATE TABLE users (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
     CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX events_device ON events (device, seq);
     CREATE TABLE alerts (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE revisions (version INTEGER PRIMARY KEY, bundle TEXT NOT NULL, doc TEXT NOT NULL);
     CREATE TABLE rollouts (bundle TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE telemetry_cursor (device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
     CREATE TABLE samples (
        device TEXT NOT NULL, seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (device, seq)) WITHOUT ROWID;",
];

/// How many events the store keeps (the oldest go first).
pub const EVENTS_KEPT: i64 = 20_000;

/// The SQLite store.
#[derive(Debug)]
pub struct Sqlite {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> Error {
    Error::Db(e.to_string())
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Db(format!("encoding: {e}")))
}

fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Decode {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

impl Sqlite {
    /// Opens (creating) `path`, switches to WAL and runs the migrations
    /// it lacks. A database from a newer control plane is refused.
    pub fn open(path: &Path) -> Result<Sqlite> {
        let conn = Connection::open(path).map_err(db)?;
        Self::init(conn)
    }

    /// An in-memory store (tests and benches).
    pub fn memory() -> Result<Sqlite> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(mut conn: Connection) -> Result<Sqlite> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let have: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map_err(db)?
            .try_into()
            .unwrap_or(0);
        if have > MIGRATIONS.len() {
            return Err(Error::Db(format!(
                "the database has schema version {have}; this control plane knows up to {}: upgrade onprem",
                MIGRATIONS.len()
            )));
        }
        for (i, script) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = conn.transaction().map_err(db)?;
            tx.execute_batch(script).map_err(db)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db)?;
            tx.commit().map_err(db)?;
            tracing::info!(version = i + 1, "database migrated");
        }
        Ok(Sqlite {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn docs<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<T>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(sql).map_err(db)?;
        let rows = st.query_map(p, |r| r.get::<_, String>(0)).map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(from_json(what, &r.map_err(db)?)?);
        }
        Ok(out)
    }

    /// The newest documents of a `(seq, doc, …)` table (`sql` selects
    /// `seq, doc` newest first), oldest first, each given its `seq`.
    fn seq_docs<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        p: impl rusqlite::Params,
        set_seq: fn(&mut T, u64),
    ) -> Result<Vec<T>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(sql).map_err(db)?;
        let rows = st
            .query_map(p, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let (seq, doc) = r.map_err(db)?;
            let mut e: T = from_json(what, &doc)?;
            set_seq(&mut e, seq as u64);
            out.push(e);
        }
        out.reverse();
        Ok(out)
    }
}

/// Inserts or replaces the document of `key` in a `(key, doc)` table
/// (`table` and `key_col` are this file's constants, never input).
fn upsert(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    key_col: &str,
    key: &str,
    doc: &str,
) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} ({key_col}, doc) VALUES (?1, ?2)
             ON CONFLICT ({key_col}) DO UPDATE SET doc = excluded.doc"
        ),
        params![key, doc],
    )
    .map_err(db)?;
    Ok(())
}

fn kind_str(k: Kind) -> &'static str {
    k.as_str()
}

impl Store for Sqlite {
    fn objects(&self, kind: Kind) -> Result<Vec<Object>> {
        self.docs(
            kind.as_str(),
            "SELECT doc FROM objects WHERE kind = ?1 ORDER BY name",
            params![kind_str(kind)],
        )
    }

    fn devices(&self) -> Result<Vec<Device>> {
        self.docs("device", "SELECT doc FROM devices ORDER BY name", [])
    }

    fn tokens(&self) -> Result<Vec<Token>> {
        // The hash is not in the document (it is never serialised): put
        // it back from its column.
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT doc, hash FROM tokens ORDER BY id")
            .map_err(db)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let (doc, hash) = r.map_err(db)?;
            let mut t: Token = from_json("token", &doc)?;
            t.hash = hash;
            out.push(t);
        }
        Ok(out)
    }

    fn users(&self) -> Result<Vec<User>> {
        self.docs("user", "SELECT doc FROM users ORDER BY name", [])
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.seq_docs(
            "audit entry",
            "SELECT seq, doc FROM audit ORDER BY seq DESC LIMIT ?1",
            params![limit as i64],
            |e: &mut AuditEntry, seq| e.seq = seq,
        )
    }

    fn events(&self, device: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        let set = |e: &mut Event, seq| e.seq = seq;
        match device {
            Some(d) => self.seq_docs(
                "event",
                "SELECT seq, doc FROM events WHERE device = ?2 ORDER BY seq DESC LIMIT ?1",
                params![limit as i64, d],
                set,
            ),
            None => self.seq_docs(
                "event",
                "SELECT seq, doc FROM events ORDER BY seq DESC LIMIT ?1",
                params![limit as i64],
                set,
            ),
        }
    }

    fn alerts(&self) -> Result<Vec<Alert>> {
        self.docs("alert", "SELECT doc FROM alerts ORDER BY id", [])
    }

    fn revision(&self, version: u64) -> Result<Option<Revision>> {
        let conn = self.conn();
        let doc: Option<String> = conn
            .query_row(
                "SELECT doc FROM revisions WHERE version = ?1",
                params![version as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        doc.map(|d| from_json("revision", &d)).transpose()
    }

    fn last_version(&self) -> Result<u64> {
        let conn = self.conn();
        let v: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM revisions", [], |r| r.get(0))
            .map_err(db)?;
        Ok(v.unwrap_or(0) as u64)
    }

    fn rollouts(&self) -> Result<Vec<Rollout>> {
        self.docs("rollout", "SELECT doc FROM rollouts ORDER BY bundle", [])
    }

    fn commit(&self, writes: Vec<Write>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let mut events = false;
        for w in writes {
            match w {
                Write::PutObject(o) => {
                    tx.execute(
                        "INSERT INTO objects (kind, name, id, doc) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (kind, name) DO UPDATE SET doc = excluded.doc",
                        params![kind_str(o.kind), o.name, o.id, to_json(&o)?],
                    )
                    .map_err(db)?;
                }
                Write::DeleteObject(kind, name) => {
                    tx.execute(
                        "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
                        params![kind_str(kind), name],
                    )
                    .map_err(db)?;
                }
                Write::PutDevice(d) => {
                    tx.execute(
                        "INSERT INTO devices (id, name, fingerprint, doc) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                           fingerprint = excluded.fingerprint, doc = excluded.doc",
                        params![d.id, d.name, d.cert_fingerprint, to_json(&d)?],
                    )
                    .map_err(db)?;
                }
                Write::DeleteDevice(id) => {
                    tx.execute("DELETE FROM devices WHERE id = ?1", params![id])
                        .map_err(db)?;
                    tx.execute("DELETE FROM samples WHERE device = ?1", params![id])
                        .map_err(db)?;
                    tx.execute(
                        "DELETE FROM telemetry_cursor WHERE device = ?1",
                        params![id],
                    )
                    .map_err(db)?;
                }
                Write::PutToken(t) => {
                    tx.execute(
                        "INSERT INTO tokens (id, hash, doc) VALUES (?1, ?2, ?3)
                         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                        params![t.id, t.hash, to_json(&t)?],
                    )
                    .map_err(db)?;
                }
                Write::ConsumeToken { id, device, at } => {
                    let doc: Option<String> = tx
                        .query_row("SELECT doc FROM tokens WHERE id = ?1", params![id], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(db)?;
                    let Some(doc) = doc else {
                        return Err(Error::Conflict(format!("token {id} is gone")));
                    };
                    let mut t: Token = from_json("token", &doc)?;
                    if t.used_at != 0 {
                        return Err(Error::Conflict(format!(
                            "token {id} was used already, by device {}",
                            t.used_by
                        )));
                    }
                    t.used_at = at;
                    t.used_by = device;
                    tx.execute(
                        "UPDATE tokens SET doc = ?2 WHERE id = ?1",
                        params![id, to_json(&t)?],
                    )
                    .map_err(db)?;
                }
                Write::TokenUsed { id, at } => {
                    let doc: Option<String> = tx
                        .query_row("SELECT doc FROM tokens WHERE id = ?1", params![id], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(db)?;
                    if let Some(doc) = doc {
                        let mut t: Token = from_json("token", &doc)?;
                        if t.kind == "api" && t.used_at != at {
                            t.used_at = at;
                            tx.execute(
                                "UPDATE tokens SET doc = ?2 WHERE id = ?1",
                                params![id, to_json(&t)?],
                            )
                            .map_err(db)?;
                        }
                    }
                }
                Write::PutUser(u) => {
                    upsert(&tx, "users", "name", &u.name, &to_json(&u)?)?;
                }
                Write::Audit(e) => {
                    tx.execute("INSERT INTO audit (doc) VALUES (?1)", params![to_json(&e)?])
                        .map_err(db)?;
                }
                Write::Event(e) => {
                    tx.execute(
                        "INSERT INTO events (device, doc) VALUES (?1, ?2)",
                        params![e.device, to_json(&e)?],
                    )
                    .map_err(db)?;
                    events = true;
                }
                Write::PutAlert(a) => {
                    upsert(&tx, "alerts", "id", &a.id, &to_json(&a)?)?;
                }
                Write::PutRevision(r) => {
                    tx.execute(
                        "INSERT INTO revisions (version, bundle, doc) VALUES (?1, ?2, ?3)",
                        params![r.version as i64, r.bundle, to_json(&r)?],
                    )
                    .map_err(db)?;
                }
                Write::PutRollout(r) => {
                    upsert(&tx, "rollouts", "bundle", &r.bundle, &to_json(&r)?)?;
                }
                Write::DeleteRollout(b) => {
                    tx.execute("DELETE FROM rollouts WHERE bundle = ?1", params![b])
                        .map_err(db)?;
                }
            }
        }
        if events {
            tx.execute(
                "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1",
                params![EVENTS_KEPT],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn telemetry_cursor(&self, device: &str) -> Result<u64> {
        let conn = self.conn();
        let v: Option<i64> = conn
            .query_row(
                "SELECT seq FROM telemetry_cursor WHERE device = ?1",
                params![device],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        Ok(v.unwrap_or(0) as u64)
    }

    fn append_samples(
        &self,
        device: &str,
        samples: &[StoredSample],
        window: usize,
    ) -> Result<(u64, usize)> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let mut cursor: u64 = tx
            .query_row(
                "SELECT seq FROM telemetry_cursor WHERE device = ?1",
                params![device],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(db)?
            .unwrap_or(0) as u64;
        let mut new = 0;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO samples (device, seq, ts_ms, data) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db)?;
            for s in samples {
                if s.seq <= cursor {
                    continue; // delivered before: exactly once
                }
                ins.execute(params![device, s.seq as i64, s.ts_ms, s.data])
                    .map_err(db)?;
                cursor = s.seq;
                new += 1;
            }
        }
        tx.execute(
            "INSERT INTO telemetry_cursor (device, seq) VALUES (?1, ?2)
             ON CONFLICT (device) DO UPDATE SET seq = excluded.seq",
            params![device, cursor as i64],
        )
        .map_err(db)?;
        tx.execute(
            "DELETE FROM samples WHERE device = ?1 AND seq <= ?2",
            params![device, cursor as i64 - window as i64],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok((cursor, new))
    }

    fn samples(&self, device: &str, after: u64, limit: usize) -> Result<Vec<StoredSample>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT seq, ts_ms, data FROM samples WHERE device = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![device, after as i64, limit as i64], |r| {
                Ok(StoredSample {
                    seq: r.get::<_, i64>(0)? as u64,
                    ts_ms: r.get(1)?,
                    data: r.get(2)?,
                })
            })
            .map_err(db)?;
        rows.collect::<std::result::Result<_, _>>().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str) -> Token {
        Token {
            id: id.into(),
            kind: "enrol".into(),
            hash: format!("h-{id}"),
            ..Default::default()
        }
    }

    #[test]
    fn migrates_once_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("onprem.db");
        {
            let s = Sqlite::open(&path).unwrap();
            s.commit(vec![Write::PutToken(token("t1"))]).unwrap();
        }
        let s = Sqlite::open(&path).unwrap();
        let t = s.tokens().unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].hash, "h-t1");
        let mode: String = s
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_failed_commit_stores_nothing() {
        let s = Sqlite::memory().unwrap();
        s.commit(vec![Write::PutToken(token("t1"))]).unwrap();
        let once = Write::ConsumeToken {
            id: "t1".into(),
            device: "d1".into(),
            at: 5,
        };
        s.commit(vec![once.clone()]).unwrap();
        let err = s
            .commit(vec![
                Write::PutUser(User {
                    name: "x".into(),
                    role: "viewer".into(),
                    created: 1,
                }),
                once,
            ])
            .unwrap_err();
        assert!(
            err.to_string().contains("used already, by device d1"),
            "{err}"
        );
        assert!(s.users().unwrap().is_empty());
    }

    #[test]
    fn samples_are_stored_once_in_order() {
        let s = Sqlite::memory().unwrap();
        let sample = |seq| StoredSample {
            seq,
            ts_ms: seq as i64 * 1000,
            data: vec![seq as u8],
        };
        let (c, n) = s
            .append_samples("d", &[sample(1), sample(2), sample(3)], 100)
            .unwrap();
        assert_eq!((c, n), (3, 3));
        // A replay after a lost acknowledgement: only the new one is kept.
        let (c, n) = s
            .append_samples("d", &[sample(2), sample(3), sample(4)], 100)
            .unwrap();
        assert_eq!((c, n), (4, 1));
        let got: Vec<u64> = s
            .samples("d", 0, 10)
            .unwrap()
            .iter()
            .map(|x| x.seq)
            .collect();
        assert_eq!(got, vec![1, 2, 3, 4]);
        // The window keeps the last two.
        s.append_samples("d", &[sample(5)], 2).unwrap();
        let got: Vec<u64> = s
            .samples("d", 0, 10)
            .unwrap()
            .iter()
            .map(|x| x.seq)
            .collect();
        assert_eq!(got, vec![4, 5]);
        assert_eq!(s.telemetry_cursor("d").unwrap(), 5);
    }
}
