//! String enums of the JSON contract, each defined once: its wire names, `ALL`, parsing,
//! display, the OpenAPI enum, and the "allowed" list that error messages print.

/// Define a string enum. Each variant is written once with its wire name; the macro derives
/// serde (so an unknown name is refused by the deserializer, which lists the allowed names),
/// `utoipa::ToSchema` (an OpenAPI `enum`), `Display`, `FromStr`, `ALL` and [`allowed`].
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            // `tt`, not `literal`: a `literal` fragment reaches the derives wrapped in an invisible
            // group, which utoipa's attribute parser skips (the OpenAPI enum would show the Rust
            // variant names); serde reads either.
            $( $(#[$vmeta:meta])* $variant:ident = $text:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every wire name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The allowed wire names, for error messages.
            pub fn allowed() -> String {
                $crate::spec::names::allowed(Self::NAMES)
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::spec::names::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::spec::names::UnknownName {
                        got: s.to_string(),
                        allowed: Self::allowed(),
                    })
            }
        }
    };
}
pub(crate) use string_enum;

/// A name that is not one of an enum's wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {got:?}; allowed: {allowed}")]
pub struct UnknownName {
    pub got: String,
    pub allowed: String,
}

/// `"a" or "b"`, `"a", "b" or "c"`; longer lists as `a, b, c, d`.
pub fn allowed(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("\"{one}\""),
        [init @ .., last] if names.len() <= 3 => {
            let quoted: Vec<String> = init.iter().map(|n| format!("\"{n}\"")).collect();
            format!("{} or \"{last}\"", quoted.join(", "))
        }
        _ => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    string_enum! {
        /// A test enum.
        enum Colour {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn one_definition_drives_names_parsing_and_serde() {
        assert_eq!(Colour::NAMES, &["red", "dark_blue"]);
        assert_eq!("dark_blue".parse::<Colour>(), Ok(Colour::DarkBlue));
        let e = "green".parse::<Colour>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown value \"green\"; allowed: \"red\" or \"dark_blue\""
        );
        assert_eq!(serde_json::to_string(&Colour::DarkBlue).unwrap(), "\"dark_blue\"");
        assert_eq!(serde_json::from_str::<Colour>("\"red\"").unwrap(), Colour::Red);
        assert_eq!(allowed(&["a", "b", "c", "d"]), "a, b, c, d");
        assert_eq!(allowed(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }

    #[test]
    fn the_openapi_enum_holds_the_wire_names() {
        let schema = serde_json::to_value(<Colour as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["enum"], serde_json::json!(["red", "dark_blue"]), "{schema}");
    }
}
