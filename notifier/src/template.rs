//! Message templates: one text file per kind of message, shipped in `notifier/templates/` and
//! overridable file by file from a configured directory (a file there replaces the default of
//! the same name).
//!
//! A template file is header lines, a blank line, then the email body:
//!
//! ```text
//! Subject: Order {{order_id}} has shipped
//! SMS: Order {{order_id}} shipped with {{carrier}}, tracking {{tracking_number}}.
//!
//! Hello {{customer_name}}, ...
//! ```
//!
//! `{{name}}` is replaced by the event's value of that name; an unknown name is left as written
//! so a typo shows in the message instead of silently vanishing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::NotifyError;

/// Every template, with its shipped default.
const DEFAULTS: [(&str, &str); 9] = [
    (
        "order_created",
        include_str!("../templates/order_created.txt"),
    ),
    ("order_paid", include_str!("../templates/order_paid.txt")),
    (
        "order_shipped",
        include_str!("../templates/order_shipped.txt"),
    ),
    (
        "order_delivered",
        include_str!("../templates/order_delivered.txt"),
    ),
    (
        "order_cancelled",
        include_str!("../templates/order_cancelled.txt"),
    ),
    (
        "return_approved",
        include_str!("../templates/return_approved.txt"),
    ),
    (
        "return_rejected",
        include_str!("../templates/return_rejected.txt"),
    ),
    (
        "inventory_low",
        include_str!("../templates/inventory_low.txt"),
    ),
    (
        "inventory_restored",
        include_str!("../templates/inventory_restored.txt"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub subject: String,
    pub sms: String,
    pub body: String,
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub sms: String,
    pub body: String,
}

pub type Vars = BTreeMap<&'static str, String>;

#[derive(Debug, Clone)]
pub struct Templates {
    by_name: BTreeMap<&'static str, Template>,
}

impl Templates {
    /// The shipped defaults, each replaced by `dir/NAME.txt` where that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Self, NotifyError> {
        let mut by_name = BTreeMap::new();
        for (name, default) in DEFAULTS {
            let text = match dir.map(|d| d.join(format!("{name}.txt"))) {
                Some(path) if path.exists() => {
                    std::fs::read_to_string(&path).map_err(|e| NotifyError::io(&path, e))?
                }
                _ => default.to_string(),
            };
            by_name.insert(name, parse(name, &text)?);
        }
        Ok(Self { by_name })
    }

    pub fn render(&self, name: &str, vars: &Vars) -> Rendered {
        let template = self
            .by_name
            .get(name)
            .expect("every template name used is in DEFAULTS");
        Rendered {
            subject: fill(&template.subject, vars),
            sms: fill(&template.sms, vars),
            body: fill(&template.body, vars),
        }
    }
}

fn parse(name: &str, text: &str) -> Result<Template, NotifyError> {
    let error = |reason: &str| NotifyError::Template {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let text = text.replace("\r\n", "\n");
    let (head, body) = text
        .split_once("\n\n")
        .ok_or_else(|| error("no blank line between the headers and the body"))?;
    let mut subject = None;
    let mut sms = None;
    for line in head.lines() {
        if let Some(v) = line.strip_prefix("Subject:") {
            subject = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("SMS:") {
            sms = Some(v.trim().to_string());
        } else {
            return Err(error(&format!(
                "unknown header line {line:?} (expected Subject: or SMS:)"
            )));
        }
    }
    Ok(Template {
        subject: subject.ok_or_else(|| error("no Subject: line"))?,
        sms: sms.ok_or_else(|| error("no SMS: line"))?,
        body: body.to_string(),
    })
}

fn fill(text: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match vars.get(key) {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_render() {
        let t = Templates::load(None).unwrap();
        let mut vars = Vars::new();
        vars.insert("order_id", "o-1".into());
        vars.insert("carrier", "UPS".into());
        vars.insert("tracking_number", "1Z".into());
        let r = t.render("order_shipped", &vars);
        assert_eq!(r.subject, "Order o-1 has shipped");
        assert_eq!(r.sms, "Order o-1 shipped with UPS, tracking 1Z.");
        assert!(r.body.contains("Tracking number: 1Z"), "{}", r.body);
        // Unknown names stay visible.
        assert!(r.body.contains("{{customer_name}}"), "{}", r.body);
    }

    #[test]
    fn a_directory_overrides_one_template_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("order_paid.txt"),
            "Subject: Paid {{order_id}}\nSMS: paid\n\nThanks.\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let mut vars = Vars::new();
        vars.insert("order_id", "o-9".into());
        assert_eq!(t.render("order_paid", &vars).subject, "Paid o-9");
        assert_eq!(
            t.render("order_delivered", &vars).subject,
            "Order o-9 was delivered"
        );
        std::fs::write(dir.path().join("order_paid.txt"), "Subject: x\n\nno sms").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("order_paid") && err.contains("SMS"), "{err}");
    }
}
