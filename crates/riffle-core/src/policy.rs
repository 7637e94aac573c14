//! Resource policies: IAM-style JSON documents attached to a stream or a consumer, which let
//! principals of other accounts use it (PutResourcePolicy, GetResourcePolicy,
//! DeleteResourcePolicy).
//!
//! **The evaluation** follows IAM's rules for resource-based policies, for what riffle has:
//! - a request from the resource's own account is allowed (riffle has no identity policies, so
//!   an account's own principals hold every permission on its resources), unless a statement
//!   of the resource's policy explicitly denies it;
//! - a request from another account is allowed only when a statement allows the action for
//!   that principal and none denies it: an explicit Deny always wins.
//!
//! **What a statement may say.** `Effect` (`Allow` or `Deny`), `Principal` (`"*"`, or `{"AWS":
//! …}` with `"*"`, 12-digit account ids, `arn:aws:iam::ACCOUNT:root` for a whole account, or a
//! principal's ARN), `Action` (`kinesis:PutRecord`, with `*` and `?` wildcards, matched without
//! regard to case as IAM does), `Resource` (ARNs with wildcards; absent means the resource the
//! policy is attached to), and `Sid`. A `Condition` cannot be evaluated here, so riffle reads
//! it conservatively: an `Allow` with a condition grants nothing, a `Deny` with one always
//! applies. `NotPrincipal`, `NotAction` and `NotResource` are refused when the policy is put.

use serde_json::Value;

/// Policy documents are at most this long (AWS's documented limit for Kinesis).
pub const POLICY_BYTES_MAX: usize = 20 * 1024;

/// The caller as a policy sees it.
#[derive(Debug, Clone)]
pub struct Principal<'a> {
    pub account: &'a str,
    /// `arn:aws:iam::ACCOUNT:root` or `arn:aws:iam::ACCOUNT:user/NAME`.
    pub arn: &'a str,
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement explicitly denies it.
    Deny,
    /// A statement allows it and none denies it.
    Allow,
    /// No statement applies.
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalMatch {
    Anyone,
    Account(String),
    Arn(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    principals: Vec<PrincipalMatch>,
    actions: Vec<String>,
    /// `None`: the resource the policy is attached to.
    resources: Option<Vec<String>>,
    conditional: bool,
}

/// A parsed, validated policy document with its original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePolicy {
    pub text: String,
    statements: Vec<Statement>,
}

impl ResourcePolicy {
    /// Parses and validates a policy document; the error says what is wrong, for an
    /// InvalidArgumentException.
    pub fn parse(text: &str) -> Result<ResourcePolicy, String> {
        if text.len() > POLICY_BYTES_MAX {
            return Err(format!(
                "The policy document is {} bytes; the limit is {POLICY_BYTES_MAX}.",
                text.len()
            ));
        }
        let document: Value = serde_json::from_str(text)
            .map_err(|error| format!("The policy document is not valid JSON: {error}."))?;
        let object = document
            .as_object()
            .ok_or("The policy document must be a JSON object.")?;
        for key in object.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("Unknown policy element {key}."));
            }
        }
        match object.get("Version").and_then(Value::as_str) {
            Some("2012-10-17" | "2008-10-17") | None => {}
            Some(other) => return Err(format!("Unsupported policy Version {other}.")),
        }
        let statements = match object.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(item @ Value::Object(_)) => vec![item],
            _ => return Err("The policy document needs a Statement.".into()),
        };
        if statements.is_empty() {
            return Err("The policy document needs at least one statement.".into());
        }
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, statement)| {
                parse_statement(statement).map_err(|why| format!("Statement {index}: {why}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ResourcePolicy {
            text: text.to_owned(),
            statements,
        })
    }

    /// What the policy says about `principal` calling `action` (`kinesis:PutRecord`) on
    /// `resource` (the ARN the policy is attached to).
    pub fn decide(&self, principal: &Principal<'_>, action: &str, resource: &str) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            let applies = statement
                .principals
                .iter()
                .any(|allowed| principal_matches(allowed, principal))
                && statement.actions.iter().any(|pattern| {
                    wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
                })
                && statement.resources.as_ref().is_none_or(|patterns| {
                    patterns
                        .iter()
                        .any(|pattern| wildcard_match(pattern, resource))
                });
            if !applies {
                continue;
            }
            match statement.effect {
                Effect::Deny => return Decision::Deny,
                Effect::Allow if !statement.conditional => allowed = true,
                Effect::Allow => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::Silent
        }
    }
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{what} entries must be strings."))
            })
            .collect(),
        _ => Err(format!(
            "{what} must be a string or a non-empty list of strings."
        )),
    }
}

fn parse_statement(value: &Value) -> Result<Statement, String> {
    let object = value
        .as_object()
        .ok_or("a statement must be a JSON object.")?;
    for key in object.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition" => {}
            "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(format!("{key} is not supported; use {}.", &key[3..]))
            }
            other => return Err(format!("unknown element {other}.")),
        }
    }
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err("Effect must be Allow or Deny.".into()),
    };
    let principals = match object.get("Principal") {
        Some(Value::String(star)) if star == "*" => vec![PrincipalMatch::Anyone],
        Some(Value::Object(kinds)) => {
            let mut principals = Vec::new();
            for (kind, value) in kinds {
                if kind != "AWS" {
                    // Service and federated principals never call riffle.
                    continue;
                }
                for entry in strings(value, "Principal AWS")? {
                    principals.push(parse_principal(&entry)?);
                }
            }
            principals
        }
        Some(_) => return Err("Principal must be \"*\" or an object such as {\"AWS\": …}.".into()),
        None => return Err("a resource policy statement needs a Principal.".into()),
    };
    let actions = strings(
        object.get("Action").ok_or("a statement needs an Action.")?,
        "Action",
    )?;
    for action in &actions {
        let lower = action.to_ascii_lowercase();
        if lower != "*" && !lower.starts_with("kinesis:") {
            return Err(format!("Action {action} is not a Kinesis action."));
        }
    }
    let resources = object
        .get("Resource")
        .map(|value| strings(value, "Resource"))
        .transpose()?;
    let conditional = match object.get("Condition") {
        None => false,
        Some(Value::Object(_)) => true,
        Some(_) => return Err("Condition must be an object.".into()),
    };
    Ok(Statement {
        effect,
        principals,
        actions,
        resources,
        conditional,
    })
}

fn parse_principal(entry: &str) -> Result<PrincipalMatch, String> {
    if entry == "*" {
        return Ok(PrincipalMatch::Anyone);
    }
    if entry.len() == 12 && entry.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(PrincipalMatch::Account(entry.to_owned()));
    }
    let rest = entry
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("Principal {entry} is neither an account id nor an IAM ARN."))?;
    let (account, resource) = rest
        .split_once(':')
        .ok_or_else(|| format!("Principal {entry} is not an IAM ARN."))?;
    if account.len() != 12 || !account.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "Principal {entry} does not name a 12-digit account."
        ));
    }
    Ok(if resource == "root" {
        PrincipalMatch::Account(account.to_owned())
    } else {
        PrincipalMatch::Arn(entry.to_owned())
    })
}

fn principal_matches(allowed: &PrincipalMatch, principal: &Principal<'_>) -> bool {
    match allowed {
        PrincipalMatch::Anyone => true,
        PrincipalMatch::Account(account) => account == principal.account,
        PrincipalMatch::Arn(arn) => arn == principal.arn,
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one character.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let (pattern, value) = (pattern.as_bytes(), value.as_bytes());
    let (mut p, mut v) = (0, 0);
    let (mut star, mut resume) = (None, 0);
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            p += 1;
            resume = v;
        } else if let Some(at) = star {
            p = at + 1;
            resume += 1;
            v = resume;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "arn:aws:kinesis:us-east-1:111111111111:stream/orders";

    fn bob() -> Principal<'static> {
        Principal {
            account: "222222222222",
            arn: "arn:aws:iam::222222222222:user/bob",
        }
    }

    fn policy(statements: &str) -> ResourcePolicy {
        ResourcePolicy::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn an_allow_for_the_account_or_the_user_grants_the_action_only() {
        for principal in [
            r#""222222222222""#,
            r#""arn:aws:iam::222222222222:root""#,
            r#""arn:aws:iam::222222222222:user/bob""#,
            r#"["333333333333","222222222222"]"#,
        ] {
            let p = policy(&format!(
                r#"[{{"Effect":"Allow","Principal":{{"AWS":{principal}}},"Action":["kinesis:GetRecords","kinesis:GetShardIterator"],"Resource":"{STREAM}"}}]"#
            ));
            assert_eq!(
                p.decide(&bob(), "kinesis:GetRecords", STREAM),
                Decision::Allow,
                "{principal}"
            );
            assert_eq!(
                p.decide(&bob(), "kinesis:PutRecord", STREAM),
                Decision::Silent,
                "{principal}"
            );
        }
        let other_user = policy(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:user/alice"},"Action":"kinesis:*"}"#,
        );
        assert_eq!(
            other_user.decide(&bob(), "kinesis:GetRecords", STREAM),
            Decision::Silent
        );
    }

    #[test]
    fn an_explicit_deny_wins() {
        let p = policy(
            r#"[{"Effect":"Allow","Principal":"*","Action":"kinesis:*"},
                {"Effect":"Deny","Principal":{"AWS":"222222222222"},"Action":"kinesis:Put*"}]"#,
        );
        assert_eq!(
            p.decide(&bob(), "kinesis:GetRecords", STREAM),
            Decision::Allow
        );
        assert_eq!(
            p.decide(&bob(), "kinesis:PutRecords", STREAM),
            Decision::Deny
        );
    }

    #[test]
    fn wildcards_match_actions_without_case_and_resources_exactly() {
        let p = policy(
            r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"Kinesis:get*","Resource":"arn:aws:kinesis:us-east-1:111111111111:stream/ord?rs"}"#,
        );
        assert_eq!(
            p.decide(&bob(), "kinesis:GetRecords", STREAM),
            Decision::Allow
        );
        assert_eq!(
            p.decide(
                &bob(),
                "kinesis:GetRecords",
                "arn:aws:kinesis:us-east-1:111111111111:stream/other"
            ),
            Decision::Silent
        );
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn conditions_are_read_conservatively() {
        let allow = policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"kinesis:*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#,
        );
        assert_eq!(
            allow.decide(&bob(), "kinesis:GetRecords", STREAM),
            Decision::Silent
        );
        let deny = policy(
            r#"[{"Effect":"Allow","Principal":"*","Action":"kinesis:*"},
                {"Effect":"Deny","Principal":"*","Action":"kinesis:*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]"#,
        );
        assert_eq!(
            deny.decide(&bob(), "kinesis:GetRecords", STREAM),
            Decision::Deny
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        for (text, why) in [
            ("not json", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Version":"2012-10-17"}"#, "needs a Statement"),
            (r#"{"Statement":[]}"#, "at least one"),
            (
                r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"kinesis:*"}}"#,
                "Effect",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"kinesis:*"}}"#,
                "Principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#,
                "Action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}"#,
                "not a Kinesis action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"kinesis:*"}}"#,
                "not supported",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"kinesis:*"}}"#,
                "neither",
            ),
            (
                r#"{"Version":"2099-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}"#,
                "Version",
            ),
        ] {
            let error = ResourcePolicy::parse(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
        assert!(ResourcePolicy::parse(&" ".repeat(POLICY_BYTES_MAX + 1)).is_err());
    }
}
