//! Per-user UI preferences (the live grid's layout, camera groups and tour),
//! kept server-side in the `user_prefs` tree so they follow the user to
//! another browser. Removed with the user ([`super::Users::remove_audited`]).
//!
//! They change what one person's screen shows, nothing about footage or
//! access, so changes are not audited. Camera ids in groups are kept as given:
//! the UI shows only the cameras the user may see now, and a camera given back
//! later reappears in its group.
//!
//! Beside them, administrators keep shared groups (the `shared_groups` tree, one row),
//! offered to every user, each filtered to the cameras that user may see.

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Name of the tree.
pub const TREE: &str = "user_prefs";
/// Name of the tree of the shared groups.
pub const SHARED_TREE: &str = "shared_groups";
/// The one row of [`SHARED_TREE`].
const SHARED_KEY: &[u8] = b"groups";
/// Most groups one user keeps.
pub const MAX_GROUPS: usize = 50;
/// Most cameras in one group.
pub const MAX_GROUP_CAMERAS: usize = 64;
/// Longest group name, characters.
pub const MAX_GROUP_NAME: usize = 60;
/// Shortest tour step, seconds: a live picture needs a moment to start.
pub const MIN_TOUR_SECONDS: u32 = 3;
/// Longest tour step, seconds.
pub const MAX_TOUR_SECONDS: u32 = 3600;
/// The grid layouts: tiles per page. 0 is "auto" (the smallest that holds the
/// cameras shown, 2×2 for four).
pub const LAYOUTS: [u8; 5] = [0, 1, 4, 9, 16];

/// Everything a user keeps. Fields added later default, so old rows still read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prefs {
    /// The live grid.
    pub live: LivePrefs,
}

/// The live grid's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivePrefs {
    /// Tiles per page, one of [`LAYOUTS`].
    pub layout: u8,
    /// Named sets of cameras, in the user's order.
    pub groups: Vec<Group>,
    /// The group shown (its name), or all cameras when `None`.
    pub group: Option<String>,
    /// Whether `group` names a shared group rather than one of the user's own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub group_shared: bool,
    /// The tour through groups and pages.
    pub tour: Tour,
}

/// A named set of cameras.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Shown in the picker; unique per user.
    pub name: String,
    /// Camera ids, in tile order.
    pub cameras: Vec<String>,
}

/// A tour shows each group in turn (every page of each), or the pages of all
/// cameras when the user has no groups, for `seconds` each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tour {
    /// Whether it runs (a video wall resumes its tour after a reload).
    pub on: bool,
    /// Seconds per step.
    pub seconds: u32,
}

impl Default for Tour {
    fn default() -> Tour {
        Tour {
            on: false,
            seconds: 10,
        }
    }
}

impl Prefs {
    /// Checks limits; the error says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.live;
        if !LAYOUTS.contains(&l.layout) {
            return Err(format!(
                "live.layout: one of 0 (auto), 1, 4, 9, 16, not {}",
                l.layout
            ));
        }
        validate_groups(&l.groups, "live.groups")?;
        // A shared group may be deleted by an admin later: the UI then shows all cameras.
        if let Some(sel) = l.group.as_ref().filter(|_| !l.group_shared) {
            if !l.groups.iter().any(|g| g.name == *sel) {
                return Err(format!("live.group: no group named {sel:?}"));
            }
        }
        if !(MIN_TOUR_SECONDS..=MAX_TOUR_SECONDS).contains(&l.tour.seconds) {
            return Err(format!(
                "live.tour.seconds: {MIN_TOUR_SECONDS} to {MAX_TOUR_SECONDS}"
            ));
        }
        Ok(())
    }
}

/// Checks a list of groups (a user's, or the shared ones); `field` names it in errors.
pub fn validate_groups(groups: &[Group], field: &str) -> Result<(), String> {
    if groups.len() > MAX_GROUPS {
        return Err(format!("{field}: at most {MAX_GROUPS}"));
    }
    let mut names = std::collections::HashSet::new();
    for g in groups {
        let n = g.name.trim();
        if n.is_empty() || n != g.name || g.name.chars().count() > MAX_GROUP_NAME {
            return Err(format!(
                "{field}: a name is 1 to {MAX_GROUP_NAME} characters without spaces around it: {:?}",
                g.name
            ));
        }
        if !names.insert(n) {
            return Err(format!("{field}: two groups are named {n:?}"));
        }
        if g.cameras.is_empty() || g.cameras.len() > MAX_GROUP_CAMERAS {
            return Err(format!(
                "{field}: group {n:?} needs 1 to {MAX_GROUP_CAMERAS} cameras"
            ));
        }
        if let Some(bad) = g.cameras.iter().find(|c| !crate::config::valid_id(c)) {
            return Err(format!("{field}: group {n:?}: bad camera id {bad:?}"));
        }
    }
    Ok(())
}

/// The `user_prefs` and `shared_groups` trees.
#[derive(Clone)]
pub struct PrefsStore {
    db: sled::Db,
    tree: sled::Tree,
    shared: sled::Tree,
}

impl PrefsStore {
    /// Opens (creating if needed) the tree in `db`.
    pub fn open(db: &sled::Db) -> anyhow::Result<PrefsStore> {
        Ok(PrefsStore {
            db: db.clone(),
            tree: db.open_tree(TREE).context("opening the user_prefs tree")?,
            shared: db
                .open_tree(SHARED_TREE)
                .context("opening the shared_groups tree")?,
        })
    }

    /// The shared groups, all of them (callers filter them per user).
    pub fn shared_groups(&self) -> anyhow::Result<Vec<Group>> {
        match self.shared.get(SHARED_KEY)? {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_slice(&v).context("corrupt shared groups row"),
        }
    }

    /// Replaces the shared groups (after [`validate_groups`]) and flushes.
    pub fn set_shared_groups(&self, groups: &[Group]) -> anyhow::Result<()> {
        self.shared
            .insert(SHARED_KEY, serde_json::to_vec(groups)?)
            .context("storing the shared groups")?;
        self.db.flush().context("flushing the shared groups")?;
        Ok(())
    }

    /// `user`'s preferences, the defaults if none are stored.
    pub fn get(&self, user: &str) -> anyhow::Result<Prefs> {
        match self.tree.get(user.as_bytes())? {
            None => Ok(Prefs::default()),
            Some(v) => serde_json::from_slice(&v)
                .with_context(|| format!("user {user}: corrupt preferences row")),
        }
    }

    /// Replaces `user`'s preferences (after [`Prefs::validate`]) and flushes.
    pub fn set(&self, user: &str, prefs: &Prefs) -> anyhow::Result<()> {
        self.tree
            .insert(user.as_bytes(), serde_json::to_vec(prefs)?)
            .with_context(|| format!("user {user}: storing preferences"))?;
        self.db.flush().context("flushing preferences")?;
        Ok(())
    }

    /// Forgets `user`'s preferences (the user is being removed).
    pub fn remove(&self, user: &str) -> anyhow::Result<()> {
        self.tree.remove(user.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, cams: &[&str]) -> Group {
        Group {
            name: name.into(),
            cameras: cams.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn stored_per_user_and_defaults_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let s = PrefsStore::open(&db).unwrap();
        assert_eq!(s.get("ann").unwrap(), Prefs::default());
        let mut p = Prefs::default();
        p.live.layout = 9;
        p.live.groups = vec![group("Gates", &["a", "b"])];
        p.live.group = Some("Gates".into());
        p.live.tour = Tour {
            on: true,
            seconds: 5,
        };
        p.validate().unwrap();
        s.set("ann", &p).unwrap();
        assert_eq!(s.get("ann").unwrap(), p);
        assert_eq!(s.get("bob").unwrap(), Prefs::default());
        s.remove("ann").unwrap();
        assert_eq!(s.get("ann").unwrap(), Prefs::default());
    }

    #[test]
    fn shared_groups_are_one_list_for_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let s = PrefsStore::open(&db).unwrap();
        assert_eq!(s.shared_groups().unwrap(), vec![]);
        let g = vec![group("Gates", &["a", "b"]), group("Yard", &["c"])];
        s.set_shared_groups(&g).unwrap();
        assert_eq!(PrefsStore::open(&db).unwrap().shared_groups().unwrap(), g);
        assert!(
            validate_groups(&[group("a", &["x"]), group("a", &["y"])], "groups")
                .unwrap_err()
                .starts_with("groups: two groups")
        );
    }

    #[test]
    fn old_rows_read_with_defaults_for_new_fields() {
        let p: Prefs = serde_json::from_str(r#"{"live":{"layout":4}}"#).unwrap();
        assert_eq!(p.live.layout, 4);
        assert_eq!(p.live.tour, Tour::default());
    }

    #[test]
    fn limits_are_checked() {
        let bad = |f: &dyn Fn(&mut LivePrefs)| {
            let mut p = Prefs::default();
            f(&mut p.live);
            p.validate().unwrap_err()
        };
        assert!(bad(&|l| l.layout = 6).contains("layout"));
        assert!(bad(&|l| l.tour.seconds = 1).contains("tour.seconds"));
        assert!(bad(&|l| l.group = Some("x".into())).contains("no group"));
        // A shared group is not among the user's own.
        let mut p = Prefs::default();
        p.live.group = Some("x".into());
        p.live.group_shared = true;
        p.validate().unwrap();
        assert!(bad(&|l| l.groups = vec![group(" a", &["a"])]).contains("name"));
        assert!(bad(&|l| l.groups = vec![group("a", &[])]).contains("cameras"));
        assert!(bad(&|l| l.groups = vec![group("a", &["../x"])]).contains("camera id"));
        assert!(
            bad(&|l| l.groups = vec![group("a", &["x"]), group("a", &["y"])])
                .contains("two groups")
        );
        assert!(bad(&|l| l.groups = (0..=MAX_GROUPS)
            .map(|i| group(&i.to_string(), &["a"]))
            .collect())
        .contains("at most"));
    }
}
