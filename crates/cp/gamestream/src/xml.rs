//! nvhttp XML replies: `<?xml …?><root status_code="N" [status_message="…"]>fields</root>`
//! (reference §A3). Every value is escaped; field names are our own constants.

/// An XML reply under construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlReply {
    status: u16,
    message: Option<String>,
    body: String,
}

/// Escapes the five XML special characters.
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0; drop them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

impl XmlReply {
    pub fn new(status: u16) -> Self {
        XmlReply {
            status,
            message: None,
            body: String::new(),
        }
    }

    /// An error reply with a message.
    pub fn error(status: u16, message: &str) -> Self {
        XmlReply::new(status).message(message)
    }

    pub fn message(mut self, m: &str) -> Self {
        self.message = Some(m.to_owned());
        self
    }

    /// Appends `<name>value</name>`.
    pub fn field(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.push(name, &value.to_string());
        self
    }

    /// Appends `<name>value</name>` in place.
    pub fn push(&mut self, name: &str, value: &str) {
        self.body.push('<');
        self.body.push_str(name);
        self.body.push('>');
        escape(value, &mut self.body);
        self.body.push_str("</");
        self.body.push_str(name);
        self.body.push('>');
    }

    /// Appends already-rendered child XML (built with `XmlReply::push` on another reply).
    pub fn push_raw_element(&mut self, name: &str, inner: &XmlReply) {
        self.body.push('<');
        self.body.push_str(name);
        self.body.push('>');
        self.body.push_str(&inner.body);
        self.body.push_str("</");
        self.body.push_str(name);
        self.body.push('>');
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The full document.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(self.body.len() + 96);
        s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"");
        s.push_str(&self.status.to_string());
        s.push('"');
        if let Some(m) = &self.message {
            s.push_str(" status_message=\"");
            escape(m, &mut s);
            s.push('"');
        }
        s.push('>');
        s.push_str(&self.body);
        s.push_str("</root>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let x = XmlReply::error(401, "a \"b\" <c>")
            .field("n", "x&y\u{1}")
            .render();
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root status_code=\"401\" \
             status_message=\"a &quot;b&quot; &lt;c&gt;\"><n>x&amp;y</n></root>"
        );
    }
}
