//! The four tools an agent has for the project's files: their names, the definitions sent to
//! the model (OpenAI function tools with JSON Schema parameters), and reading their arguments.
//!
//! | tool | arguments | does |
//! |---|---|---|
//! | `write_file` | `path`, `content` | creates or replaces a file |
//! | `read_file` | `path` | returns a file's content |
//! | `list_files` | none | lists every file with its size |
//! | `delete_file` | `path` | removes a file |
//!
//! Arguments are parsed strictly enough to catch a model's slip (a missing field, a number for
//! a string) with a message naming the fix, and leniently where nothing is lost: unknown extra
//! fields are ignored, and empty arguments (`""`) count as `{}` for a tool without arguments.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::limits::{MAX_FILES, MAX_FILE_BYTES, MAX_PATH_BYTES, MAX_WORKSPACE_BYTES};
use crate::llm::ToolDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    WriteFile,
    ReadFile,
    ListFiles,
    DeleteFile,
}

impl Tool {
    pub const ALL: [Tool; 4] = [
        Tool::WriteFile,
        Tool::ReadFile,
        Tool::ListFiles,
        Tool::DeleteFile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::WriteFile => "write_file",
            Tool::ReadFile => "read_file",
            Tool::ListFiles => "list_files",
            Tool::DeleteFile => "delete_file",
        }
    }

    pub fn parse(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What the arguments look like, for error messages.
    fn shape(self) -> &'static str {
        match self {
            Tool::WriteFile => r#"{"path": "src/main.rs", "content": "…"}"#,
            Tool::ReadFile | Tool::DeleteFile => r#"{"path": "src/main.rs"}"#,
            Tool::ListFiles => "{}",
        }
    }

    pub fn definition(self) -> ToolDef {
        let path = json!({
            "type": "string",
            "description": format!(
                "File path relative to the project root, with / between folders, e.g. src/main.rs \
                 (no leading /, no .., at most {MAX_PATH_BYTES} bytes)."
            ),
        });
        let (description, parameters) = match self {
            Tool::WriteFile => (
                format!(
                    "Create a file of the project or replace its whole content. Folders are \
                     created as needed. At most {MAX_FILE_BYTES} bytes per file, {MAX_FILES} files \
                     and {MAX_WORKSPACE_BYTES} bytes in all."
                ),
                json!({
                    "type": "object",
                    "properties": {
                        "path": path,
                        "content": {"type": "string", "description": "The complete new content of the file."},
                    },
                    "required": ["path", "content"],
                    "additionalProperties": false,
                }),
            ),
            Tool::ReadFile => (
                "Read a file of the project: returns its whole content.".to_string(),
                json!({
                    "type": "object",
                    "properties": {"path": path},
                    "required": ["path"],
                    "additionalProperties": false,
                }),
            ),
            Tool::ListFiles => (
                "List every file of the project with its size in bytes.".to_string(),
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            Tool::DeleteFile => (
                "Delete a file of the project.".to_string(),
                json!({
                    "type": "object",
                    "properties": {"path": path},
                    "required": ["path"],
                    "additionalProperties": false,
                }),
            ),
        };
        ToolDef {
            name: self.name().into(),
            description,
            parameters,
        }
    }
}

/// The definitions of all four tools, for [`crate::llm::openai::chat_request_body_with_tools`].
pub fn definitions() -> Vec<ToolDef> {
    Tool::ALL.into_iter().map(Tool::definition).collect()
}

#[derive(Debug, Deserialize)]
pub struct WriteArgs {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Deserialize)]
pub struct PathArgs {
    pub path: String,
}

#[derive(Debug, Deserialize)]
pub struct NoArgs {}

/// Parses `args_json` for `tool`, or says in plain words what is wrong.
pub fn parse_args<T: DeserializeOwned>(tool: Tool, args_json: &str) -> Result<T, String> {
    let text = match args_json.trim() {
        "" => "{}",
        t => t,
    };
    serde_json::from_str(text).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "are not valid JSON"
        } else {
            "do not fit"
        };
        format!(
            "The arguments of {} {what} ({e}). Call it again with a JSON object like {}.",
            tool.name(),
            tool.shape()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tool::ALL {
            assert_eq!(Tool::parse(t.name()), Some(t));
        }
        assert_eq!(Tool::parse("Write_File"), None);
    }

    #[test]
    fn definitions_are_openai_function_tools_with_object_schemas() {
        let defs = definitions();
        assert_eq!(defs.len(), 4);
        for d in &defs {
            let v = d.to_json();
            assert_eq!(v["type"], "function");
            assert_eq!(v["function"]["name"], d.name.as_str());
            assert_eq!(v["function"]["parameters"]["type"], "object");
            assert!(d.description.len() > 10);
        }
        assert_eq!(defs[0].parameters["required"], json!(["path", "content"]));
    }

    #[test]
    fn bad_arguments_explain_the_expected_shape() {
        let e = parse_args::<WriteArgs>(Tool::WriteFile, "{\"path\": \"a\"").unwrap_err();
        assert!(
            e.contains("not valid JSON") && e.contains("\"content\""),
            "{e}"
        );
        let e = parse_args::<WriteArgs>(Tool::WriteFile, "{\"path\": \"a\"}").unwrap_err();
        assert!(
            e.contains("do not fit") && e.contains("missing field `content`"),
            "{e}"
        );
        let e = parse_args::<PathArgs>(Tool::ReadFile, "{\"path\": 3}").unwrap_err();
        assert!(e.contains("read_file"), "{e}");
        assert!(parse_args::<PathArgs>(Tool::ReadFile, "[]").is_err());
    }

    #[test]
    fn empty_arguments_and_extra_fields_are_accepted() {
        assert!(parse_args::<NoArgs>(Tool::ListFiles, "").is_ok());
        assert!(parse_args::<NoArgs>(Tool::ListFiles, " {} ").is_ok());
        let a: PathArgs = parse_args(Tool::ReadFile, r#"{"path":"a","why":"x"}"#).unwrap();
        assert_eq!(a.path, "a");
    }
}
