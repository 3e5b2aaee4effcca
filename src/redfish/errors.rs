//! Redfish error responses: an HTTP status and one or more messages of
//! the DMTF Base message registry, in the `error` object the
//! specification defines (`code`, `message`, `@Message.ExtendedInfo`).

use http::StatusCode;
use serde_json::{Value, json};

/// The Base registry version the message ids name.
pub const BASE: &str = "Base.1.16.0";

/// One registry message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Key in the Base registry (`PropertyUnknown`).
    pub key: &'static str,
    /// The text, with its arguments filled in.
    pub text: String,
    /// The arguments.
    pub args: Vec<String>,
    /// `OK`, `Warning` or `Critical`.
    pub severity: &'static str,
    /// What the client can do about it.
    pub resolution: String,
    /// The properties it is about (`#/UserName`), when any.
    pub related: Vec<String>,
}

impl Message {
    fn new(key: &'static str, severity: &'static str, text: String, args: Vec<String>) -> Message {
        Message {
            key,
            text,
            args,
            severity,
            resolution: String::new(),
            related: Vec::new(),
        }
    }

    /// Sets the resolution.
    pub fn resolution(mut self, r: impl Into<String>) -> Message {
        self.resolution = r.into();
        self
    }

    fn about(mut self, property: &str) -> Message {
        self.related.push(format!("#/{property}"));
        self
    }

    /// The `Message` object of `@Message.ExtendedInfo`.
    pub fn json(&self) -> Value {
        let mut m = json!({
            "@odata.type": "#Message.v1_3_0.Message",
            "MessageId": format!("{BASE}.{}", self.key),
            "Message": self.text,
            "MessageArgs": self.args,
            "MessageSeverity": self.severity,
        });
        if !self.resolution.is_empty() {
            m["Resolution"] = json!(self.resolution);
        }
        if !self.related.is_empty() {
            m["RelatedProperties"] = json!(self.related);
        }
        m
    }
}

/// A request the service refuses: status and messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The HTTP status.
    pub status: StatusCode,
    /// At least one message.
    pub messages: Vec<Message>,
    /// Extra headers (`Allow` on 405, `WWW-Authenticate` on 401).
    pub headers: Vec<(&'static str, String)>,
}

impl Error {
    /// An error of one message.
    pub fn new(status: StatusCode, m: Message) -> Error {
        Error {
            status,
            messages: vec![m],
            headers: Vec::new(),
        }
    }

    /// Several messages under one status (a PATCH with several bad
    /// properties).
    pub fn many(status: StatusCode, messages: Vec<Message>) -> Error {
        Error {
            status,
            messages,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Error {
        self.headers.push((name, value.into()));
        self
    }

    /// The response body.
    pub fn body(&self) -> Value {
        let (code, message) = match self.messages.as_slice() {
            [one] => (format!("{BASE}.{}", one.key), one.text.clone()),
            _ => (
                format!("{BASE}.GeneralError"),
                "A general error has occurred. See ExtendedInfo for more information.".to_owned(),
            ),
        };
        json!({
            "error": {
                "code": code,
                "message": message,
                "@Message.ExtendedInfo": self.messages.iter().map(Message::json).collect::<Vec<_>>(),
            }
        })
    }

    /// The first message's registry key (for logs and tests).
    pub fn key(&self) -> &'static str {
        self.messages.first().map_or("GeneralError", |m| m.key)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts: Vec<&str> = self.messages.iter().map(|m| m.text.as_str()).collect();
        write!(f, "{} {}", self.status.as_u16(), texts.join("; "))
    }
}

fn q(s: &str) -> String {
    s.to_owned()
}

/// 404: nothing at `uri`.
pub fn not_found(uri: &str) -> Error {
    Error::new(
        StatusCode::NOT_FOUND,
        Message::new(
            "ResourceMissingAtURI",
            "Critical",
            format!("The resource at the URI '{uri}' was not found."),
            vec![q(uri)],
        )
        .resolution(
            "Place a valid resource at the URI or correct the URI and resubmit the request.",
        ),
    )
}

/// 405: the method is not allowed here; `allow` lists those that are.
pub fn method_not_allowed(allow: &[&str]) -> Error {
    Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Message::new(
            "OperationNotAllowed",
            "Critical",
            "The HTTP method is not allowed on this resource.".into(),
            vec![],
        )
        .resolution(format!("Use one of: {}.", allow.join(", "))),
    )
    .header("Allow", allow.join(", "))
}

/// 400: the body is not JSON.
pub fn malformed_json(why: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        Message::new(
            "MalformedJSON",
            "Critical",
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.".into(),
            vec![],
        )
        .resolution(format!("Ensure that the request body is valid JSON and resubmit the request ({why}).")),
    )
}

/// 400: the body is JSON but not an object.
pub fn not_an_object() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        Message::new(
            "MalformedJSON",
            "Critical",
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.".into(),
            vec![],
        )
        .resolution("The request body must be a JSON object."),
    )
}

/// A property the resource does not have.
pub fn property_unknown(p: &str) -> Message {
    Message::new(
        "PropertyUnknown",
        "Warning",
        format!("The property {p} is not in the list of valid properties for the resource."),
        vec![q(p)],
    )
    .about(p)
    .resolution("Remove the unknown property from the request body and resubmit the request if the operation failed.")
}

/// A read-only property; `why` says where it is set instead.
pub fn property_not_writable(p: &str, why: &str) -> Message {
    Message::new(
        "PropertyNotWritable",
        "Warning",
        format!("The property {p} is a read only property and cannot be assigned a value."),
        vec![q(p)],
    )
    .about(p)
    .resolution(why.to_owned())
}

/// A property of the wrong JSON type.
pub fn property_type(value: &Value, p: &str) -> Message {
    let v = value.to_string();
    Message::new(
        "PropertyValueTypeError",
        "Warning",
        format!("The value '{v}' for the property {p} is of a different type than the property can accept."),
        vec![v, q(p)],
    )
    .about(p)
    .resolution("Correct the value for the property in the request body and resubmit the request if the operation failed.")
}

/// A property value outside what the service accepts.
pub fn property_out_of_range(value: &Value, p: &str, why: &str) -> Message {
    let v = value.to_string();
    Message::new(
        "PropertyValueOutOfRange",
        "Warning",
        format!("The value '{v}' for the property {p} is not in the supported range of acceptable values."),
        vec![v, q(p)],
    )
    .about(p)
    .resolution(why.to_owned())
}

/// A required property left out of a create request.
pub fn create_missing(p: &str) -> Message {
    Message::new(
        "CreateFailedMissingReqProperties",
        "Critical",
        format!("The create operation failed because the required property {p} was missing from the request."),
        vec![q(p)],
    )
    .about(p)
    .resolution("Correct the body to include the required property with a valid value and resubmit the request if the operation failed.")
}

/// 400 with these messages.
pub fn bad_request(messages: Vec<Message>) -> Error {
    Error::many(StatusCode::BAD_REQUEST, messages)
}

/// 400: an action without a required parameter.
pub fn action_parameter_missing(action: &str, p: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        Message::new(
            "ActionParameterMissing",
            "Critical",
            format!("The action {action} requires the parameter {p} to be present in the request body."),
            vec![q(action), q(p)],
        )
        .about(p)
        .resolution("Supply the action with the required parameter in the request body when the request is resubmitted."),
    )
}

/// 400: an action parameter it does not take.
pub fn action_parameter_unknown(action: &str, p: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        Message::new(
            "ActionParameterUnknown",
            "Warning",
            format!("The action {action} was submitted with the invalid parameter {p}."),
            vec![q(action), q(p)],
        )
        .about(p)
        .resolution("Correct the invalid action parameter and resubmit the request if the operation failed."),
    )
}

/// 400: an action parameter of the wrong type.
pub fn action_parameter_type(value: &Value, p: &str, action: &str) -> Error {
    let v = value.to_string();
    Error::new(
        StatusCode::BAD_REQUEST,
        Message::new(
            "ActionParameterValueTypeError",
            "Warning",
            format!("The value '{v}' for the parameter {p} in the action {action} is of a different type than the parameter can accept."),
            vec![v, q(p), q(action)],
        )
        .about(p)
        .resolution("Correct the value for the parameter in the request body and resubmit the request if the operation failed."),
    )
}

/// 400: an action parameter value outside its allowable values.
pub fn action_parameter_not_in_list(value: &str, p: &str, action: &str, allowed: &[&str]) -> Error {
    action_refused(
        action,
        p,
        value,
        &format!("Choose one of {}.", allowed.join(", ")),
    )
}

/// 401: no credentials, or a session that has ended.
pub fn no_valid_session() -> Error {
    Error::new(
        StatusCode::UNAUTHORIZED,
        Message::new(
            "NoValidSession",
            "Critical",
            "There is no valid session established with the implementation.".into(),
            vec![],
        )
        .resolution("Establish a session (POST to /redfish/v1/SessionService/Sessions) or send Basic credentials, and resubmit the request."),
    )
    .header("WWW-Authenticate", "Basic realm=\"onprem Redfish\"")
}

/// 401: the user name or password is wrong (or the account is locked or
/// disabled: not told apart, so as not to help a guesser).
pub fn login_failed(uri: &str) -> Error {
    Error::new(
        StatusCode::UNAUTHORIZED,
        Message::new(
            "ResourceAtUriUnauthorized",
            "Critical",
            format!("While accessing the resource at '{uri}', the service received an authorization error 'invalid credentials'."),
            vec![q(uri), "invalid credentials".into()],
        )
        .resolution("Check the user name and password; repeated failures lock the account for a while."),
    )
    .header("WWW-Authenticate", "Basic realm=\"onprem Redfish\"")
}

/// 403: the role lacks a privilege.
pub fn insufficient_privilege(needed: &str) -> Error {
    Error::new(
        StatusCode::FORBIDDEN,
        Message::new(
            "InsufficientPrivilege",
            "Critical",
            "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.".into(),
            vec![],
        )
        .resolution(format!("The operation needs the {needed} privilege; use an account whose role has it.")),
    )
}

/// 412: `If-Match` does not match the resource's ETag.
pub fn precondition_failed() -> Error {
    Error::new(
        StatusCode::PRECONDITION_FAILED,
        Message::new(
            "PreconditionFailed",
            "Critical",
            "The ETag supplied did not match the ETag required to change this resource.".into(),
            vec![],
        )
        .resolution("Try the operation again using the appropriate ETag."),
    )
}

/// 412: the client asked for an OData version other than 4.0.
pub fn odata_version(v: &str) -> Error {
    Error::new(
        StatusCode::PRECONDITION_FAILED,
        Message::new(
            "HeaderInvalid",
            "Critical",
            format!("Header 'OData-Version: {v}' is invalid."),
            vec![format!("OData-Version: {v}")],
        )
        .resolution("This service speaks OData-Version 4.0."),
    )
}

/// 415: a body that is not JSON by its Content-Type.
pub fn unsupported_media_type(ct: &str) -> Error {
    Error::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Message::new(
            "HeaderInvalid",
            "Critical",
            format!("Header 'Content-Type: {ct}' is invalid."),
            vec![format!("Content-Type: {ct}")],
        )
        .resolution("Send the body as application/json."),
    )
}

/// 501: a `$` query parameter this service does not implement.
pub fn query_not_supported(p: &str) -> Error {
    Error::new(
        StatusCode::NOT_IMPLEMENTED,
        Message::new(
            "QueryNotSupported",
            "Warning",
            "Querying is not supported by the implementation.".into(),
            vec![],
        )
        .resolution(format!(
            "Remove the query parameter {p} and resubmit the request."
        )),
    )
}

/// 413: the body is larger than the service takes.
pub fn payload_too_large(limit: usize) -> Error {
    Error::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Message::new(
            "PayloadTooLarge",
            "Critical",
            "The supplied payload exceeds the maximum size supported by the service.".into(),
            vec![],
        )
        .resolution(format!("Send at most {limit} bytes.")),
    )
}

/// 503: too many sessions open; `resolution` says which limit and what
/// to do.
pub fn session_limit(resolution: String) -> Error {
    Error::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Message::new(
            "SessionLimitExceeded",
            "Critical",
            "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.".into(),
            vec![],
        )
        .resolution(resolution),
    )
}

/// 503: the service is too busy to take the request now (too many logins
/// being verified); `Retry-After` says when to try again.
pub fn temporarily_unavailable(retry_secs: u64) -> Error {
    Error::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Message::new(
            "ServiceTemporarilyUnavailable",
            "Critical",
            format!("The service is temporarily unavailable.  Retry in {retry_secs} seconds."),
            vec![retry_secs.to_string()],
        )
        .resolution("Wait for the indicated retry duration and retry the operation."),
    )
    .header("Retry-After", retry_secs.to_string())
}

/// 400: an action parameter value the node does not take; `why` says
/// what it takes, or which bundle setting refuses it.
pub fn action_refused(action: &str, p: &str, value: &str, why: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        Message::new(
            "ActionParameterValueNotInList",
            "Warning",
            format!("The value '{value}' for the parameter {p} in the action {action} is not in the list of acceptable values."),
            vec![q(value), q(p), q(action)],
        )
        .about(p)
        .resolution(why.to_owned()),
    )
}

/// 408: the request's body did not arrive within `secs` seconds of its
/// head.
pub fn body_timeout(secs: f64) -> Error {
    Error::new(
        StatusCode::REQUEST_TIMEOUT,
        Message::new(
            "GeneralError",
            "Critical",
            "A general error has occurred.  See Resolution for information on how to resolve the error.".into(),
            vec![],
        )
        .resolution(format!(
            "Send the whole request body within {secs} seconds of the request's headers."
        )),
    )
    .header("Connection", "close")
}

/// 500: something failed inside the service.
pub fn internal(why: &str) -> Error {
    Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Message::new(
            "InternalError",
            "Critical",
            "The request failed due to an internal service error.  The service is still operational.".into(),
            vec![],
        )
        .resolution(why.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_names_its_id_in_code() {
        let e = not_found("/redfish/v1/Nope");
        let b = e.body();
        assert_eq!(b["error"]["code"], "Base.1.16.0.ResourceMissingAtURI");
        assert_eq!(
            b["error"]["@Message.ExtendedInfo"][0]["MessageArgs"][0],
            "/redfish/v1/Nope"
        );
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn several_messages_are_a_general_error() {
        let e = bad_request(vec![
            property_unknown("Foo"),
            property_not_writable("Id", "read only"),
        ]);
        let b = e.body();
        assert_eq!(b["error"]["code"], "Base.1.16.0.GeneralError");
        let infos = b["error"]["@Message.ExtendedInfo"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0]["MessageId"], "Base.1.16.0.PropertyUnknown");
        assert_eq!(infos[0]["RelatedProperties"][0], "#/Foo");
        assert_eq!(infos[1]["MessageId"], "Base.1.16.0.PropertyNotWritable");
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let e = method_not_allowed(&["GET", "HEAD"]);
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(e.headers, vec![("Allow", "GET, HEAD".to_owned())]);
    }
}
