//! Who is on the other end of the control socket (or running the CLI): a local
//! OS user, named in audit entries; and who may use the socket at all.

use std::ffi::CStr;

/// A local OS user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Login name from the password database, or `uid N` when it has none.
    pub name: String,
}

impl Caller {
    /// The user running this process.
    pub fn current() -> Caller {
        // SAFETY: getuid has no preconditions.
        Caller::of(unsafe { libc::getuid() })
    }

    /// The user `uid`, named.
    pub fn of(uid: u32) -> Caller {
        Caller {
            uid,
            name: user_name(uid).unwrap_or_else(|| format!("uid {uid}")),
        }
    }

    /// The audit entry's `client`: which local user ran the command.
    pub fn audit_client(&self) -> String {
        format!("local user {} (uid {})", self.name, self.uid)
    }
}

/// Whether a peer with `uid` may use the control socket of a server running as
/// `server_uid`: the same user, or root.
pub fn allowed(uid: u32, server_uid: u32) -> bool {
    uid == 0 || uid == server_uid
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getpwuid_r writes at most buf.len() bytes into buf and fills pwd,
    // whose string pointers point into buf, which outlives their use here.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_same_user_only() {
        assert!(allowed(1000, 1000));
        assert!(allowed(0, 1000));
        assert!(!allowed(65534, 1000));
        assert!(!allowed(1001, 1000));
        assert!(allowed(0, 0));
        assert!(!allowed(65534, 0));
    }

    #[test]
    fn root_is_named() {
        assert_eq!(Caller::of(0).name, "root");
    }
}
