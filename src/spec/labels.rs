//! A job's labels: an optional `name` and a few `tags`, given as top-level fields of the
//! submitted body next to the spec (or the preset). They say what the job is for, not what it
//! computes: they are taken off the body before the spec is parsed and never enter the spec.

use serde_json::Value;

use super::SpecError;

/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Most tags on one job.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in characters (each is 1 to this many of `[A-Za-z0-9_.-]`).
pub const MAX_TAG_CHARS: usize = 40;

/// A job's name and tags, checked: the name is 1..=120 characters (any text: pages escape it), tags are at most 16, each
/// 1..=40 characters of `[A-Za-z0-9_.-]`, without repeats (in the order given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    name: Option<String>,
    tags: Vec<String>,
}

impl Labels {
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Split a request body into its labels and the rest (the spec or preset request). `null`
    /// means absent.
    pub fn take(body: &Value) -> Result<(Value, Labels), SpecError> {
        let Some(obj) = body.as_object() else {
            return Ok((body.clone(), Labels::default()));
        };
        let mut rest = obj.clone();
        let name = match rest.remove("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_name(&s)?),
            Some(other) => {
                return Err(SpecError::new(
                    "name",
                    format!("must be a string of 1 to {MAX_NAME_CHARS} characters, got {other}"),
                ))
            }
        };
        let tags = match rest.remove("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_TAGS {
                    return Err(SpecError::new(
                        "tags",
                        format!("at most {MAX_TAGS} tags are allowed, got {}", items.len()),
                    ));
                }
                let mut tags: Vec<String> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let tag = item
                        .as_str()
                        .ok_or_else(|| SpecError::new(format!("tags[{i}]"), tag_rule(&item.to_string())))
                        .and_then(|t| parse_tag(t).map_err(|e| SpecError::new(format!("tags[{i}]"), e)))?;
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                tags
            }
            Some(other) => {
                return Err(SpecError::new(
                    "tags",
                    format!("must be an array of at most {MAX_TAGS} tags, got {other}"),
                ))
            }
        };
        Ok((Value::Object(rest), Labels { name, tags }))
    }

    /// Labels read back from storage (checked when they were submitted).
    pub fn stored(name: Option<String>, tags: Vec<String>) -> Labels {
        Labels { name, tags }
    }
}

fn parse_name(s: &str) -> Result<String, SpecError> {
    let n = s.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(SpecError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, got {n}"),
        ));
    }
    Ok(s.to_string())
}

fn tag_rule(got: &str) -> String {
    format!("a tag must be 1 to {MAX_TAG_CHARS} characters of A-Z, a-z, 0-9, '_', '.', '-'; got {got}")
}

/// One tag: 1..=40 characters of `[A-Za-z0-9_.-]` (also the `tag` filter of a job listing).
pub fn parse_tag(s: &str) -> Result<String, String> {
    let ok = (1..=MAX_TAG_CHARS).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(tag_rule(&format!("{s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_come_off_the_body() {
        let (rest, labels) =
            Labels::take(&json!({"preset": "p", "name": "He vs <b>", "tags": ["a", "b.c", "a"]})).unwrap();
        assert_eq!(rest, json!({"preset": "p"}));
        assert_eq!(labels.name(), Some("He vs <b>"));
        assert_eq!(labels.tags(), ["a".to_string(), "b.c".to_string()]);
    }

    #[test]
    fn bad_labels_name_their_field() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(Labels::take(&json!({"name": long})).unwrap_err().field, "name");
        assert_eq!(Labels::take(&json!({"name": ""})).unwrap_err().field, "name");
        assert_eq!(Labels::take(&json!({"name": 3})).unwrap_err().field, "name");
        assert_eq!(Labels::take(&json!({"tags": "a"})).unwrap_err().field, "tags");
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(Labels::take(&json!({ "tags": many })).unwrap_err().field, "tags");
        assert_eq!(
            Labels::take(&json!({"tags": ["ok", "no space"]})).unwrap_err().field,
            "tags[1]"
        );
        assert_eq!(Labels::take(&json!({"tags": [""]})).unwrap_err().field, "tags[0]");
        assert_eq!(Labels::take(&json!({"tags": [7]})).unwrap_err().field, "tags[0]");
        let forty = "a".repeat(MAX_TAG_CHARS);
        assert!(Labels::take(&json!({ "tags": [forty] })).is_ok());
        let forty_one = "a".repeat(MAX_TAG_CHARS + 1);
        assert!(Labels::take(&json!({ "tags": [forty_one] })).is_err());
    }
}
