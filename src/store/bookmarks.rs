//! Bookmarks: a named mark (with an optional note) on one camera at one
//! moment, made by an operator during review, in their own sled tree
//! (`bookmarks`) keyed by camera and time like the segment index, so one
//! camera's bookmarks in a time range are one ordered scan.
//!
//! This module only stores and finds bookmarks; who may add or delete them is
//! the web's decision. Bookmarks are small and few (made by hand), and are
//! kept until deleted: they describe footage, they never keep it.

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One bookmark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    /// Unique, increasing.
    pub id: u64,
    /// Camera id.
    pub camera: String,
    /// The moment marked, ns since the epoch.
    pub time_ns: i64,
    /// Short name shown on the timeline.
    pub name: String,
    /// Longer note (may be empty).
    #[serde(default)]
    pub note: String,
    /// Who made it.
    pub created_by: String,
    /// When, ns since the epoch.
    pub created_ns: i64,
}

/// The bookmarks tree.
pub struct Bookmarks {
    db: sled::Db,
    tree: sled::Tree,
    /// id → key in `tree`, so a delete by id needs no scan.
    ids: sled::Tree,
}

impl Bookmarks {
    /// Opens (creating if needed) the `bookmarks` trees of `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<Bookmarks> {
        Ok(Bookmarks {
            db: db.clone(),
            tree: db
                .open_tree("bookmarks")
                .context("opening the bookmarks tree")?,
            ids: db
                .open_tree("bookmark_ids")
                .context("opening the bookmark ids tree")?,
        })
    }

    /// Stores a new bookmark (its `id` is assigned here) and flushes it.
    pub fn insert(&self, mut b: Bookmark) -> anyhow::Result<Bookmark> {
        b.id = self.db.generate_id()?;
        let key = key(&b.camera, b.time_ns, b.id);
        self.tree
            .insert(key.as_slice(), serde_json::to_vec(&b)?)
            .with_context(|| format!("camera {}: storing a bookmark", b.camera))?;
        self.ids.insert(b.id.to_be_bytes(), key)?;
        self.db.flush().context("flushing a bookmark")?;
        Ok(b)
    }

    /// The bookmark `id`, if it exists.
    pub fn get(&self, id: u64) -> anyhow::Result<Option<Bookmark>> {
        let Some(k) = self.ids.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        self.tree.get(k)?.map(|v| decode(&v)).transpose()
    }

    /// Deletes the bookmark `id`; returns it if it existed.
    pub fn remove(&self, id: u64) -> anyhow::Result<Option<Bookmark>> {
        let Some(k) = self.ids.remove(id.to_be_bytes())? else {
            return Ok(None);
        };
        let old = self.tree.remove(k)?.map(|v| decode(&v)).transpose()?;
        self.db.flush().context("flushing a bookmark's removal")?;
        Ok(old)
    }

    /// Bookmarks of `camera` in `[start_ns, end_ns)`, oldest first, at most `limit`.
    pub fn range(
        &self,
        camera: &str,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<Bookmark>> {
        let mut out = Vec::new();
        for item in self
            .tree
            .range(key(camera, start_ns, 0)..key(camera, end_ns, 0))
        {
            out.push(decode(&item?.1)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

fn decode(v: &[u8]) -> anyhow::Result<Bookmark> {
    serde_json::from_slice(v).context("corrupt bookmark row")
}

/// Camera id, NUL, order-preserving time, id.
fn key(camera: &str, time_ns: i64, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(camera.len() + 17);
    k.extend_from_slice(camera.as_bytes());
    k.push(0);
    k.extend_from_slice(&((time_ns as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bm(camera: &str, time_ns: i64, name: &str) -> Bookmark {
        Bookmark {
            id: 0,
            camera: camera.into(),
            time_ns,
            name: name.into(),
            note: String::new(),
            created_by: "op".into(),
            created_ns: 0,
        }
    }

    #[test]
    fn range_is_per_camera_and_ordered_and_remove_works() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let b = Bookmarks::open(&db).unwrap();
        let late = b.insert(bm("a", 30, "late")).unwrap();
        let early = b.insert(bm("a", -5, "early")).unwrap();
        b.insert(bm("ab", 10, "other camera")).unwrap();
        let names = |v: Vec<Bookmark>| v.into_iter().map(|x| x.name).collect::<Vec<_>>();
        assert_eq!(
            names(b.range("a", -10, 100, 10).unwrap()),
            ["early", "late"]
        );
        assert_eq!(
            names(b.range("a", 0, 30, 10).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(names(b.range("a", -10, 100, 1).unwrap()), ["early"]);
        assert_eq!(b.get(late.id).unwrap().unwrap().name, "late");
        assert_eq!(b.remove(early.id).unwrap().unwrap().name, "early");
        assert!(b.remove(early.id).unwrap().is_none());
        assert_eq!(names(b.range("a", -10, 100, 10).unwrap()), ["late"]);
    }
}
