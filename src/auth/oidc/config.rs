//! `[oidc]`: single sign-on with the operator's identity provider, and the
//! mapping from the provider's group (or role) values to cleannvr roles and
//! camera scopes.

use serde::Deserialize;

use crate::auth::Role;

/// `[oidc]`. `Debug` hides the client secret (configs end up in logs).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as its discovery document states it
    /// (Entra ID: `https://login.microsoftonline.com/<tenant id>/v2.0`; Keycloak:
    /// `https://<host>/realms/<realm>`). HTTPS, except to a loopback address.
    pub issuer: String,
    /// The client (application) id registered at the provider.
    pub client_id: String,
    /// The client secret (`CLEANNVR_OIDC_CLIENT_SECRET` overrides). Never logged or shown.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: this server's
    /// `https://<host>/api/oidc/callback`, registered at the provider as is.
    pub redirect_url: String,
    /// The button's words: "Sign in with <label>".
    #[serde(default = "default_label")]
    pub label: String,
    /// Scopes asked for besides `openid` (Keycloak: a client scope that adds groups).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID-token claim that carries groups or roles (Entra ID: `groups` or
    /// `roles`; Keycloak: `groups`). A dotted path reaches into objects
    /// (`realm_access.roles`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The ID-token claim that names the user in cleannvr (audit log, users list).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// A CA certificate (PEM) to trust for the provider besides the system's
    /// roots: an IdP on the LAN with the council's own CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Group values and what they grant (`[[oidc.map]]`). Someone whose groups
    /// match none is refused.
    #[serde(default, rename = "map")]
    pub mappings: Vec<GroupMapping>,
}

/// `[[oidc.map]]`: members of `group` get `role`, over `cameras` (absent: all).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    /// A value of the groups claim, compared exactly (Entra ID sends group
    /// object ids, or app role values in `roles`; Keycloak sends `/path/names`
    /// unless its mapper's "full group path" is off).
    pub group: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Camera ids this group may see; absent means all.
    #[serde(default)]
    pub cameras: Option<Vec<String>>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("label", &self.label)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("username_claim", &self.username_claim)
            .field("ca_file", &self.ca_file)
            .field("mappings", &self.mappings)
            .finish()
    }
}

fn default_label() -> String {
    "single sign-on".into()
}
fn default_scopes() -> Vec<String> {
    vec!["profile".into(), "email".into()]
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}

/// What a person's groups grant: the most powerful role any of them maps to,
/// over the cameras of every mapping with that role (all, if one says all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// Cameras; `None` means all.
    pub cameras: Option<Vec<String>>,
}

fn power(r: Role) -> u8 {
    match r {
        Role::Admin => 2,
        Role::Operator => 1,
        Role::Viewer => 0,
    }
}

impl OidcConfig {
    /// Checks the section; `Err((field, message))` names what is wrong.
    pub fn validate(&self, camera_ids: &[&str]) -> Result<(), (String, String)> {
        let url = |field: &str, v: &str| -> Result<url::Url, (String, String)> {
            let u = url::Url::parse(v)
                .map_err(|e| (format!("oidc.{field}"), format!("{v:?} is not a URL: {e}")))?;
            let loopback = match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
                return Err((
                    format!("oidc.{field}"),
                    format!("{v:?} must be https:// (plain http only to a loopback address)"),
                ));
            }
            Ok(u)
        };
        url("issuer", &self.issuer)?;
        let r = url("redirect_url", &self.redirect_url)?;
        if r.path() != "/api/oidc/callback" {
            return Err((
                "oidc.redirect_url".into(),
                format!(
                    "{:?} must end in /api/oidc/callback (this server's callback)",
                    self.redirect_url
                ),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(("oidc.client_id".into(), "must not be empty".into()));
        }
        if self.mappings.is_empty() {
            return Err((
                "oidc.map".into(),
                "add at least one [[oidc.map]] (group = \"...\", role = \"viewer\"): \
                 without one nobody can sign in"
                    .into(),
            ));
        }
        for (i, m) in self.mappings.iter().enumerate() {
            if Role::parse(&m.role).is_none() {
                return Err((
                    format!("oidc.map[{i}].role"),
                    format!("{:?} must be admin, operator or viewer", m.role),
                ));
            }
            if m.group.is_empty() {
                return Err((format!("oidc.map[{i}].group"), "must not be empty".into()));
            }
            for c in m.cameras.iter().flatten() {
                if !camera_ids.contains(&c.as_str()) {
                    return Err((
                        format!("oidc.map[{i}].cameras"),
                        format!("{c:?} is not a configured camera"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What `groups` grant, or `None` when no mapping matches (the person is
    /// refused and no account is made).
    pub fn grant(&self, groups: &[String]) -> Option<Grant> {
        let matched: Vec<(Role, &Option<Vec<String>>)> = self
            .mappings
            .iter()
            .filter(|m| groups.contains(&m.group))
            .filter_map(|m| Some((Role::parse(&m.role)?, &m.cameras)))
            .collect();
        let role = matched.iter().map(|(r, _)| *r).max_by_key(|r| power(*r))?;
        let mut cameras: Option<Vec<String>> = Some(Vec::new());
        for (_, c) in matched.iter().filter(|(r, _)| *r == role) {
            match (c, &mut cameras) {
                (None, _) => cameras = None,
                (Some(list), Some(all)) => {
                    for id in list {
                        if !all.contains(id) {
                            all.push(id.clone());
                        }
                    }
                }
                (Some(_), None) => {}
            }
        }
        Some(Grant { role, cameras })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> OidcConfig {
        toml::from_str(&format!(
            "issuer = \"https://idp.example/realms/c\"\nclient_id = \"nvr\"\n\
             client_secret = \"s3cret-value\"\n\
             redirect_url = \"https://nvr.example/api/oidc/callback\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn highest_role_wins_and_scopes_merge() {
        let c = cfg("[[map]]\ngroup = \"cctv\"\nrole = \"viewer\"\n\
             [[map]]\ngroup = \"ops-north\"\nrole = \"operator\"\ncameras = [\"a\"]\n\
             [[map]]\ngroup = \"ops-south\"\nrole = \"operator\"\ncameras = [\"b\", \"a\"]\n\
             [[map]]\ngroup = \"it\"\nrole = \"admin\"\n");
        c.validate(&["a", "b"]).unwrap();
        let g = |v: &[&str]| c.grant(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(g(&["finance"]), None);
        assert_eq!(g(&[]), None);
        assert_eq!(
            g(&["cctv"]),
            Some(Grant {
                role: Role::Viewer,
                cameras: None
            })
        );
        assert_eq!(
            g(&["cctv", "ops-north", "ops-south"]),
            Some(Grant {
                role: Role::Operator,
                cameras: Some(vec!["a".into(), "b".into()])
            })
        );
        assert_eq!(g(&["ops-north", "it"]).unwrap().role, Role::Admin);
        // Values compare exactly: a prefix or another case is not a member.
        assert_eq!(g(&["IT", "cct"]), None);
    }

    #[test]
    fn bad_sections_are_named() {
        let field = |c: OidcConfig| c.validate(&["a"]).unwrap_err().0;
        assert_eq!(field(cfg("")), "oidc.map");
        assert_eq!(
            field(cfg("[[map]]\ngroup = \"g\"\nrole = \"root\"\n")),
            "oidc.map[0].role"
        );
        assert_eq!(
            field(cfg(
                "[[map]]\ngroup = \"g\"\nrole = \"viewer\"\ncameras = [\"zz\"]\n"
            )),
            "oidc.map[0].cameras"
        );
        let mut c = cfg("[[map]]\ngroup = \"g\"\nrole = \"viewer\"\n");
        c.issuer = "http://idp.example/".into();
        assert_eq!(field(c.clone()), "oidc.issuer");
        c.issuer = "http://127.0.0.1:9/".into();
        c.validate(&[]).unwrap();
        c.redirect_url = "https://nvr.example/elsewhere".into();
        assert_eq!(field(c), "oidc.redirect_url");
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = cfg("");
        let d = format!("{c:?}");
        assert!(
            !d.contains("s3cret-value") && d.contains("<redacted>"),
            "{d}"
        );
    }
}
