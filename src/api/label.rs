//! The label a referenced Secret must carry (`--secret-reference-label`): a value of the
//! operator's configuration, shared by the command line and the reference reader.

/// A label a Secret must carry to be referenced: `key=value`, or `key` for any value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelGate {
    pub key: String,
    pub value: Option<String>,
}

impl std::str::FromStr for LabelGate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value.to_string())),
            None => (text, None),
        };
        if key.is_empty() {
            return Err(format!("{text:?} is not a label: use key=value or key"));
        }
        Ok(Self {
            key: key.into(),
            value,
        })
    }
}

impl std::fmt::Display for LabelGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LabelGate;

    #[test]
    fn a_gate_is_key_or_key_value_and_prints_back() {
        for text in ["team", "canary.dev/probe=allowed", "k="] {
            let gate: LabelGate = text.parse().unwrap();
            assert_eq!(gate.to_string(), text);
        }
        let gate: LabelGate = "a=b=c".parse().unwrap();
        assert_eq!(
            (gate.key.as_str(), gate.value.as_deref()),
            ("a", Some("b=c"))
        );
        assert!("=value".parse::<LabelGate>().is_err());
    }
}
