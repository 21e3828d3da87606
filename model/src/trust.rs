//! How a browser comes to accept the certificate, and the browser settings a scenario may
//! change: scenario vocabulary, read by the browsers that implement it.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How the browser comes to accept the certificate (DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustMode {
    /// No flags; the harness clicks through the warning page as a user does.
    ClickThrough,
    /// The WebDriver capability `acceptInsecureCerts`.
    AcceptInsecure,
    /// Chromium `--ignore-certificate-errors`.
    IgnoreFlag,
    /// Chromium `--ignore-certificate-errors-spki-list=<sha256 of the key>`.
    SpkiPin,
    /// Chromium DevTools `Security.setIgnoreCertificateErrors`.
    DevtoolsIgnore,
    /// The CA (or the self-signed leaf) in the browser's trust store: its NSS database
    /// (Chromium, Firefox), or a per-trial CA bundle in place of the system's (WebKit).
    TrustedCa,
    /// WebKitGTK's per-host allowed certificate: the WebDriver capability
    /// `webkitgtk:browserOptions` → `certificates` (`{host, certificateFile}`), which
    /// WebKitWebDriver hands to `webkit_web_context_allow_tls_certificate_for_host`.
    /// WebKit only.
    WebkitHostCertificate,
    /// Nothing accepts it: the warning page is the end state.
    None,
}

impl TrustMode {
    /// The name used in scenarios and results.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClickThrough => "click-through",
            Self::AcceptInsecure => "accept-insecure",
            Self::IgnoreFlag => "ignore-flag",
            Self::SpkiPin => "spki-pin",
            Self::DevtoolsIgnore => "devtools-ignore",
            Self::TrustedCa => "trusted-ca",
            Self::WebkitHostCertificate => "webkit-host-certificate",
            Self::None => "none",
        }
    }
}

/// Browser settings a scenario may change. `None` or empty keeps the browser's own default.
///
/// Every name here reaches a browser as data — one element of an argument vector, a JSON
/// capability, one `user_pref` line of `user.js` — never through a shell, and every name is
/// checked syntactically first, so no name can smuggle in a second switch or pref.
///
/// Typo safety: a misspelt name is the worst failure a knob can have, because the browser
/// ignores it and the run silently measures the default browser under the preview's name.
/// Chromium features are therefore a fixed list ([`ChromiumFeature`]) that fails on a typo, with
/// an explicit escape hatch, `{ unlisted = "Name" }`, for a feature the list does not have yet:
/// a preview needs no harness release, and the spelling is visibly the author's responsibility.
/// Firefox has thousands of prefs and no list the harness could keep, so a pref name is checked
/// syntactically alone; both are recorded on every cell (`chromium_features`,
/// `chromium_disabled_features`, `firefox_prefs`) and in the environment exactly as handed to
/// the browser, so a result always says what it was measured with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Knobs {
    /// Chromium pref `net.network_prediction_options` (2 disables preconnects).
    pub network_prediction_options: Option<i64>,
    /// Firefox pref `network.http.speculative-parallel-limit` (0 disables speculative
    /// connections). The same as that name in `firefox-prefs`; a scenario may use one, not both.
    pub speculative_parallel_limit: Option<i64>,
    /// Chromium features to switch on (`--enable-features`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chromium_features: Vec<ChromiumFeature>,
    /// Chromium features to switch off (`--disable-features`), added to the ones the harness
    /// switches off to silence background traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chromium_disabled_features: Vec<ChromiumFeature>,
    /// Firefox prefs written to the profile's `user.js`, after (and so over) the harness's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firefox_prefs: BTreeMap<FirefoxPref, PrefValue>,
}

/// The Firefox pref the `speculative-parallel-limit` knob sets.
pub const SPECULATIVE_PARALLEL_LIMIT: &str = "network.http.speculative-parallel-limit";

/// Two knobs that contradict each other: which key to point at, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnobConflict {
    /// The key of the knob that contradicts an earlier one, e.g. `chromium-disabled-features`.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Knobs {
    /// Checks what serde cannot: a feature named twice, or both switched on and off (Chromium
    /// lets the switch-off win, silently), and a pref set by two knobs.
    pub fn check(&self) -> Result<(), KnobConflict> {
        for (key, list) in [
            ("chromium-features", &self.chromium_features),
            (
                "chromium-disabled-features",
                &self.chromium_disabled_features,
            ),
        ] {
            for (i, f) in list.iter().enumerate() {
                if list[..i].iter().any(|g| g.as_str() == f.as_str()) {
                    return Err(KnobConflict {
                        key,
                        message: format!("`{}` is named twice in `{key}`", f.as_str()),
                    });
                }
            }
        }
        if let Some(f) = self.chromium_disabled_features.iter().find(|f| {
            self.chromium_features
                .iter()
                .any(|g| g.as_str() == f.as_str())
        }) {
            return Err(KnobConflict {
                key: "chromium-disabled-features",
                message: format!(
                    "`{}` is both in `chromium-features` and in `chromium-disabled-features`; Chromium would silently switch it off",
                    f.as_str()
                ),
            });
        }
        if self.speculative_parallel_limit.is_some()
            && self
                .firefox_prefs
                .keys()
                .any(|k| k.as_str() == SPECULATIVE_PARALLEL_LIMIT)
        {
            return Err(KnobConflict {
                key: "speculative-parallel-limit",
                message: format!(
                    "`speculative-parallel-limit` and `firefox-prefs` both set `{SPECULATIVE_PARALLEL_LIMIT}`; keep one"
                ),
            });
        }
        Ok(())
    }

    /// The Firefox prefs the knobs set, by name: `speculative-parallel-limit` and
    /// `firefox-prefs`.
    pub fn firefox_prefs(&self) -> BTreeMap<String, PrefValue> {
        let mut prefs: BTreeMap<String, PrefValue> = self
            .firefox_prefs
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect();
        if let Some(limit) = self.speculative_parallel_limit {
            prefs.insert(SPECULATIVE_PARALLEL_LIMIT.into(), PrefValue::Int(limit));
        }
        prefs
    }
}

/// A Chromium feature a scenario switches on or off.
///
/// Listed features are the ones whose effect on connections the harness knows how to read; a
/// scenario names them as a plain string (`"HappyEyeballsV3"`), and a misspelt one fails the
/// scenario with the list. Any other feature must be written `{ unlisted = "Name" }`: the
/// escape hatch is explicit so that a typo of a listed name can never pass as a preview.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChromiumFeature {
    /// The newer HTTP stream pool (`net/http/http_stream_pool*.cc`), off by default in 156.
    HappyEyeballsV3,
    /// A feature the harness does not list, by its Chromium name (checked syntactically:
    /// [`is_chromium_feature_name`]).
    Unlisted(String),
}

/// Every listed feature, for messages.
const LISTED_FEATURES: [ChromiumFeature; 1] = [ChromiumFeature::HappyEyeballsV3];

impl ChromiumFeature {
    /// The name Chromium knows the feature by.
    pub fn as_str(&self) -> &str {
        match self {
            Self::HappyEyeballsV3 => "HappyEyeballsV3",
            Self::Unlisted(name) => name,
        }
    }

    fn listed(name: &str) -> Option<Self> {
        LISTED_FEATURES.into_iter().find(|f| f.as_str() == name)
    }
}

/// Whether `name` can be a Chromium feature name: a letter, then letters, digits and `_`, at
/// most 100 characters. Nothing that Chromium's `--enable-features` syntax gives a meaning
/// (`,` between features, `<` field trials, `:` parameters, `*` defaults) can pass.
pub fn is_chromium_feature_name(name: &str) -> bool {
    name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Serialize for ChromiumFeature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Unlisted(name) => {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("unlisted", name)?;
                map.end()
            }
            listed => s.serialize_str(listed.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ChromiumFeature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FeatureVisitor;
        impl<'de> Visitor<'de> for FeatureVisitor {
            type Value = ChromiumFeature;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a listed Chromium feature name or `{ unlisted = \"Name\" }`")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                ChromiumFeature::listed(name).ok_or_else(|| {
                    let listed: Vec<String> = LISTED_FEATURES
                        .iter()
                        .map(|f| format!("`{}`", f.as_str()))
                        .collect();
                    E::custom(format!(
                        "unknown Chromium feature `{name}`, listed: {}; a feature the harness does not list is written `{{ unlisted = \"{name}\" }}`",
                        listed.join(", ")
                    ))
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut name: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "unlisted" || name.is_some() {
                        return Err(de::Error::custom(format!(
                            "unknown field `{key}`, expected `unlisted`"
                        )));
                    }
                    name = Some(map.next_value()?);
                }
                let name = name.ok_or_else(|| de::Error::missing_field("unlisted"))?;
                if ChromiumFeature::listed(&name).is_some() {
                    return Err(de::Error::custom(format!(
                        "`{name}` is listed: write it as \"{name}\""
                    )));
                }
                if !is_chromium_feature_name(&name) {
                    return Err(de::Error::custom(format!(
                        "`{name}` is not a Chromium feature name (a letter, then letters, digits or `_`)"
                    )));
                }
                Ok(ChromiumFeature::Unlisted(name))
            }
        }
        d.deserialize_any(FeatureVisitor)
    }
}

/// A Firefox pref name, checked syntactically ([`is_firefox_pref_name`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FirefoxPref(String);

impl FirefoxPref {
    /// A checked name.
    pub fn new(name: &str) -> Result<Self, String> {
        if is_firefox_pref_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "`{name}` is not a Firefox pref name (dot-separated parts of letters, digits, `_` and `-`)"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `name` can be a Firefox pref name: dot-separated, non-empty parts of ASCII letters,
/// digits, `_` and `-`, starting with a letter, at most 200 characters.
pub fn is_firefox_pref_name(name: &str) -> bool {
    name.len() <= 200
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

impl<'de> Deserialize<'de> for FirefoxPref {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::new(&name).map_err(de::Error::custom)
    }
}

/// A Firefox pref's value: Firefox has booleans, 32-bit integers and strings (no floats).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrefValue {
    /// `true` or `false`.
    Bool(bool),
    /// An integer; Firefox keeps 32 bits.
    Int(i64),
    /// A string without control characters.
    String(String),
}

impl fmt::Display for PrefValue {
    /// As in `about:config` and the results: `true`, `0`, `"text"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl Serialize for PrefValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Int(n) => s.serialize_i64(*n),
            Self::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for PrefValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = PrefValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Firefox pref value: a boolean, a 32-bit integer or a string")
            }

            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(PrefValue::Bool(b))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                if i32::try_from(n).is_ok() {
                    Ok(PrefValue::Int(n))
                } else {
                    Err(E::custom(format!(
                        "{n} does not fit a Firefox integer pref (32 bits); write it as a string if the pref is one"
                    )))
                }
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "Firefox prefs have no floats; write {n} as a string (\"{n}\") if the pref is a string"
                )))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.chars().any(char::is_control) {
                    return Err(E::custom(
                        "a Firefox pref string may not contain control characters",
                    ));
                }
                Ok(PrefValue::String(v.to_owned()))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_syntactically() {
        for ok in ["HappyEyeballsV3", "A", "Foo_Bar2"] {
            assert!(is_chromium_feature_name(ok), "{ok}");
        }
        for bad in [
            "", "2Fast", "A,B", "A<Trial", "A:p/1", "*A", "A B", "--x", "Ä",
        ] {
            assert!(!is_chromium_feature_name(bad), "{bad}");
        }
        for ok in ["network.http.speculative-parallel-limit", "a", "x.y_z.W-1"] {
            assert!(is_firefox_pref_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a\"",
            "a b",
            "a\");user_pref(\"b",
            "1a",
        ] {
            assert!(!is_firefox_pref_name(bad), "{bad}");
        }
    }

    #[test]
    fn features_and_prefs_round_trip_through_json() {
        let knobs = Knobs {
            chromium_features: vec![
                ChromiumFeature::HappyEyeballsV3,
                ChromiumFeature::Unlisted("Preview".into()),
            ],
            firefox_prefs: BTreeMap::from([
                (FirefoxPref::new("a.b").unwrap(), PrefValue::Bool(true)),
                (FirefoxPref::new("a.c").unwrap(), PrefValue::Int(-3)),
                (
                    FirefoxPref::new("a.d").unwrap(),
                    PrefValue::String("x".into()),
                ),
            ]),
            ..Knobs::default()
        };
        let json = serde_json::to_string(&knobs).unwrap();
        assert_eq!(
            json,
            r#"{"network-prediction-options":null,"speculative-parallel-limit":null,"chromium-features":["HappyEyeballsV3",{"unlisted":"Preview"}],"firefox-prefs":{"a.b":true,"a.c":-3,"a.d":"x"}}"#
        );
        assert_eq!(serde_json::from_str::<Knobs>(&json).unwrap(), knobs);
    }

    #[test]
    fn conflicts_are_found() {
        let both = Knobs {
            chromium_features: vec![ChromiumFeature::HappyEyeballsV3],
            chromium_disabled_features: vec![ChromiumFeature::HappyEyeballsV3],
            ..Knobs::default()
        };
        assert_eq!(both.check().unwrap_err().key, "chromium-disabled-features");
        let twice = Knobs {
            chromium_features: vec![
                ChromiumFeature::Unlisted("X".into()),
                ChromiumFeature::Unlisted("X".into()),
            ],
            ..Knobs::default()
        };
        assert_eq!(twice.check().unwrap_err().key, "chromium-features");
        let limit = Knobs {
            speculative_parallel_limit: Some(0),
            firefox_prefs: BTreeMap::from([(
                FirefoxPref::new(SPECULATIVE_PARALLEL_LIMIT).unwrap(),
                PrefValue::Int(0),
            )]),
            ..Knobs::default()
        };
        assert_eq!(limit.check().unwrap_err().key, "speculative-parallel-limit");
        let old = Knobs {
            speculative_parallel_limit: Some(0),
            ..Knobs::default()
        };
        assert_eq!(
            old.firefox_prefs(),
            BTreeMap::from([(SPECULATIVE_PARALLEL_LIMIT.to_owned(), PrefValue::Int(0))])
        );
    }
}
