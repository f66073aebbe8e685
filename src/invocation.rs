//! The custom-handler wire format: what the Functions host POSTs to `/{functionName}` and what
//! it expects back (`docs/protocol/functions-host.md` §1-§3).
//!
//! Decoding is defensive because the host's encoding is odd: string-valued inputs arrive JSON
//! encoded twice, `Query` may be an object or a string, header values are arrays, and `Body` is
//! absent, text or base64. Only `Data.<trigger>` is read for anything security-relevant:
//! `Metadata` is built from binding data that a JSON request body can override
//! (docs/protocol/functions-host.md §1.4).

use std::borrow::Cow;

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::telemetry::{has_unsafe_in_log, is_unsafe_in_log};

/// Why the host's invocation could not be read. Every kind is the host's (or a broken proxy's)
/// fault, never the caller's: the caller gets one generic 400 for all of them
/// (`HandlerError::caller_response`), and the `Display` text goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The body could not be read from the connection.
    #[error("reading the invocation body failed: {0}")]
    Unreadable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The body is not JSON.
    #[error("the invocation body is not JSON")]
    NotJson,
    /// The body is JSON but not an object.
    #[error("the invocation body is not a JSON object")]
    NotAnObject,
    /// `Data` is present but not an object.
    #[error("`Data` is not an object")]
    DataNotAnObject,
    /// `Data.<trigger>` is absent.
    #[error("`Data.{0}` (the HTTP trigger) is missing")]
    MissingTrigger(String),
    /// A string-valued input is not (once- or twice-encoded) JSON.
    #[error("an input value is a string that is not JSON")]
    EmbeddedNotJson,
    /// A part of the HTTP trigger's request has the wrong shape.
    #[error("the HTTP request {0}")]
    Request(RequestFault),
}

/// Which part of `Data.<trigger>` has the wrong shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestFault {
    /// The request itself.
    #[error("is not an object")]
    NotAnObject,
    /// `Query`.
    #[error("has a `Query` that is not an object")]
    Query,
    /// `Headers`.
    #[error("has `Headers` that are not an object")]
    Headers,
    /// A binary `Body`.
    #[error("has a binary body that is not valid base64")]
    BodyNotBase64,
}

/// The host's invocation payload, `{"Data": {...}, "Metadata": {...}}`.
///
/// Read in one pass for the function it is sent to: the trigger's request is read straight into
/// [`HttpRequestData`] (the members the handler uses, nothing else kept), the other `Data` members
/// (input bindings) become values, and `Metadata` is skipped (BENCHMARKS.md, "Negotiate against the
/// floor"). Skipped members are checked for syntax only: a number out of `f64` range or a lone
/// surrogate escape there no longer refuses the envelope (a map-based read did); what is read is
/// read exactly as before.
#[derive(Debug)]
pub struct InvocationRequest {
    /// The trigger's name and its request, or why it could not be read.
    trigger: (String, Result<HttpRequestData, TriggerFault>),
    /// `Data`'s other members (a repeated name keeps its last value).
    data: Map<String, Value>,
}

/// Why the trigger's request could not be read; kept until a function asks for the request, so
/// a fault surfaces where it did when the request was read on demand.
#[derive(Debug, Clone)]
enum TriggerFault {
    Missing,
    EmbeddedNotJson,
    Request(RequestFault),
}

impl InvocationRequest {
    /// Parses the raw body the host sent to a function whose HTTP trigger is named `trigger`.
    pub fn parse(body: &[u8], trigger: &str) -> Result<Self, InvocationError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let parsed =
            serde::de::DeserializeSeed::deserialize(EnvelopeSeed { trigger }, &mut deserializer)
                // As `from_slice` does: only whitespace may follow the envelope.
                .and_then(|data| deserializer.end().map(|()| data));
        let data = match parsed {
            Ok(data) => data,
            // Rare: classify the failure exactly as a full parse would.
            Err(_) => {
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                        Err(_) => InvocationError::NotJson,
                        Ok(_) => InvocationError::NotAnObject,
                    },
                );
            }
        };
        let (request, data) = match data {
            Some(DataMembers::Object { trigger, others }) => (trigger, others),
            Some(DataMembers::NotAnObject) => return Err(InvocationError::DataNotAnObject),
            None => (None, Map::new()),
        };
        let request = match request {
            None => Err(TriggerFault::Missing),
            Some(TriggerValue::Object(fields)) => HttpRequestData::from_fields(*fields),
            // Older hosts (and the emulator's string form) encode the request as JSON text.
            Some(TriggerValue::Text(text)) => HttpRequestData::from_text(&text),
            Some(TriggerValue::Other) => Err(TriggerFault::Request(RequestFault::NotAnObject)),
        };
        Ok(Self {
            trigger: (trigger.to_owned(), request),
            data,
        })
    }

    /// The HTTP trigger's request, `Data.<trigger>` (the trigger named at [`Self::parse`]).
    pub fn http_request(&self) -> Result<&HttpRequestData, InvocationError> {
        let (name, request) = &self.trigger;
        request.as_ref().map_err(|fault| match fault {
            TriggerFault::Missing => InvocationError::MissingTrigger(name.clone()),
            TriggerFault::EmbeddedNotJson => InvocationError::EmbeddedNotJson,
            TriggerFault::Request(fault) => InvocationError::Request(*fault),
        })
    }

    /// An input binding's value, decoded from its once- or twice-encoded JSON form.
    /// Decoded once and borrowed when the host sent an object, so the caller deserializes its
    /// typed view straight from it.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn input(&self, name: &str) -> Option<Result<Cow<'_, Value>, InvocationError>> {
        self.data.get(name).map(decode_embedded_json_borrowed)
    }

    /// An input binding's value read as `T`: what `input` then `T::deserialize` give,
    /// without building the decoded value first when the host sent JSON text (its usual, twice
    /// encoded form). `None` when the input is absent. One leniency: members `T` skips are
    /// checked for syntax only, so a number out of `f64` range there no longer refuses the value.
    pub fn input_as<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Option<Result<T, InputFault>> {
        let value = self.data.get(name)?;
        if let Value::String(text) = value {
            let inner = if text.trim_start().starts_with('"') {
                serde_json::from_str::<String>(text).ok().map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(text.as_str()))
            };
            if let Some(Ok(typed)) = inner.map(|inner| serde_json::from_str::<T>(&inner)) {
                return Some(Ok(typed));
            }
        }
        // Anything else (an object, or text `T` does not read): the general path, which also
        // tells text that is not JSON from JSON that is not a `T`.
        Some(match decode_embedded_json_borrowed(value) {
            Err(_) => Err(InputFault::NotJson),
            Ok(decoded) => T::deserialize(&*decoded).map_err(|_| InputFault::WrongShape),
        })
    }
}

/// Why an input binding's value could not be read as the type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFault {
    /// Its text is not JSON.
    NotJson,
    /// It is JSON, but not of the type asked for.
    WrongShape,
}

/// Reads the envelope's top level: the last `Data` member through [`DataSeed`], every other
/// member skipped. Anything but an object is an error.
struct EnvelopeSeed<'t> {
    trigger: &'t str,
}

impl<'de> serde::de::DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Option<DataMembers>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Option<DataMembers>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an invocation object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "Data" {
                data = Some(map.next_value_seed(DataSeed {
                    trigger: self.trigger,
                })?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(data)
    }
}

/// `Data`: the trigger's member read as a request, the others kept as values (the last of a
/// repeated name wins, as in a JSON object read into a map); or the note that it is no object.
enum DataMembers {
    Object {
        trigger: Option<TriggerValue>,
        others: Map<String, Value>,
    },
    NotAnObject,
}

struct DataSeed<'t> {
    trigger: &'t str,
}

impl<'de> serde::de::DeserializeSeed<'de> for DataSeed<'_> {
    type Value = DataMembers;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DataSeed<'_> {
    type Value = DataMembers;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the invocation's Data")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DataMembers, A::Error> {
        let mut trigger = None;
        let mut others = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == self.trigger {
                trigger = Some(map.next_value::<TriggerValue>()?);
            } else {
                let value = map.next_value::<Value>()?;
                others.insert(key, value);
            }
        }
        Ok(DataMembers::Object { trigger, others })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<DataMembers, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(DataMembers::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<DataMembers, E> {
        Ok(DataMembers::NotAnObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<DataMembers, E> {
        Ok(DataMembers::NotAnObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<DataMembers, E> {
        Ok(DataMembers::NotAnObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<DataMembers, E> {
        Ok(DataMembers::NotAnObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<DataMembers, E> {
        Ok(DataMembers::NotAnObject)
    }

    fn visit_unit<E>(self) -> Result<DataMembers, E> {
        Ok(DataMembers::NotAnObject)
    }
}

/// The trigger's member of `Data`: an object read straight into its fields, JSON text (the
/// request encoded as a string), or anything else (refused as not an object).
enum TriggerValue {
    Object(Box<RequestFields>),
    Text(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for TriggerValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TriggerValue;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("the HTTP trigger's request")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TriggerValue, A::Error> {
                RequestFields::read(map).map(|fields| TriggerValue::Object(Box::new(fields)))
            }

            fn visit_str<E>(self, text: &str) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Text(text.to_owned()))
            }

            fn visit_string<E>(self, text: String) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Text(text))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TriggerValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TriggerValue::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Other)
            }

            fn visit_i64<E>(self, _: i64) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Other)
            }

            fn visit_u64<E>(self, _: u64) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Other)
            }

            fn visit_f64<E>(self, _: f64) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Other)
            }

            fn visit_unit<E>(self) -> Result<TriggerValue, E> {
                Ok(TriggerValue::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The members of a request object the handler reads, each found as a JSON object read into a
/// map would find it: the first key, in order of first appearance, that equals the field's name
/// ignoring ASCII case; of that exact key, the last value (a map keeps a repeated key where it
/// first stood, with its last value). Every other member is skipped unread.
#[derive(Debug, Default, Clone)]
struct RequestFields {
    method: Option<(String, Member)>,
    query: Option<(String, Member)>,
    headers: Option<(String, Member)>,
    params: Option<(String, Member)>,
    body: Option<(String, Member)>,
}

/// A request member as read: an object's members in order, or any other value. Headers and
/// query parameters go from here straight into the request's lists; reading them into a `Map`
/// first (an index and a SipHash per name, then taken apart again) was a measurable share of
/// the envelope's parse (BENCHMARKS.md, "Negotiate against the floor").
#[derive(Debug, Clone)]
enum Member {
    /// The members of an object, each name once: where it first stood, with its last value,
    /// as a JSON object read into a `Map` keeps a repeated name.
    Object(Vec<(String, Value)>),
    Other(Value),
}

impl Member {
    #[cfg(any(test, feature = "fuzzing"))]
    fn of_value(value: Value) -> Self {
        match value {
            // A map's members are already unique.
            Value::Object(object) => Self::Object(object.into_iter().collect()),
            other => Self::Other(other),
        }
    }

    /// The members read in order, a repeated name reduced as a `Map` reduces it.
    fn of_members(members: Vec<(String, Value)>) -> Self {
        // Past a few dozen names the pairwise search would grow quadratically; a map does the
        // same reduction in linear time.
        if members.len() > 32 {
            return Self::Object(
                members
                    .into_iter()
                    .collect::<Map<_, _>>()
                    .into_iter()
                    .collect(),
            );
        }
        let mut kept: Vec<(String, Value)> = Vec::with_capacity(members.len());
        for (name, value) in members {
            match kept.iter_mut().find(|(known, _)| *known == name) {
                Some(slot) => slot.1 = value,
                None => kept.push((name, value)),
            }
        }
        Self::Object(kept)
    }

    /// The value as a JSON value (an object rebuilt as a map).
    fn into_value(self) -> Value {
        match self {
            Self::Object(members) => Value::Object(members.into_iter().collect()),
            Self::Other(value) => value,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Member {
    /// An object member by member; anything else as the `Value` serde_json would build.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Member;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Member, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(32));
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Member::of_members(members))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Member, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(32));
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Member::Other(Value::Array(items)))
            }

            fn visit_bool<E>(self, value: bool) -> Result<Member, E> {
                Ok(Member::Other(Value::Bool(value)))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Member, E> {
                Ok(Member::Other(Value::from(value)))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Member, E> {
                Ok(Member::Other(Value::from(value)))
            }

            fn visit_f64<E>(self, value: f64) -> Result<Member, E> {
                Ok(Member::Other(Value::from(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Member, E> {
                Ok(Member::Other(Value::String(value.to_owned())))
            }

            fn visit_string<E>(self, value: String) -> Result<Member, E> {
                Ok(Member::Other(Value::String(value)))
            }

            fn visit_unit<E>(self) -> Result<Member, E> {
                Ok(Member::Other(Value::Null))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl RequestFields {
    const NAMES: [&'static str; 5] = ["Method", "Query", "Headers", "Params", "Body"];

    fn slot(&mut self, index: usize) -> &mut Option<(String, Member)> {
        match index {
            0 => &mut self.method,
            1 => &mut self.query,
            2 => &mut self.headers,
            3 => &mut self.params,
            _ => &mut self.body,
        }
    }

    /// Streams a request object's members.
    fn read<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut fields = Self::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let Some(index) = Self::NAMES
                .iter()
                .position(|name| key.eq_ignore_ascii_case(name))
            else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            let slot = fields.slot(index);
            match slot {
                Some((chosen, _)) if *chosen != *key => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                _ => *slot = Some((key.into_owned(), map.next_value::<Member>()?)),
            }
        }
        Ok(fields)
    }

    /// The same fields of an object already read into a map: the reference the streaming reader
    /// is tested against, and the reading of requests built as values in tests and fuzz targets.
    #[cfg(any(test, feature = "fuzzing"))]
    fn of_object(object: &Map<String, Value>) -> Self {
        let mut fields = Self::default();
        for (index, name) in Self::NAMES.iter().enumerate() {
            *fields.slot(index) = object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(key, value)| (key.clone(), Member::of_value(value.clone())));
        }
        fields
    }
}

/// [`decode_embedded_json_borrowed`], owned: the form the unit tests compare and the fuzz
/// target calls.
#[cfg(any(test, feature = "fuzzing"))]
pub fn decode_embedded_json(value: &Value) -> Result<Value, InvocationError> {
    decode_embedded_json_borrowed(value).map(Cow::into_owned)
}

/// Decodes a value the host may have JSON-encoded once or twice: an object stays as it is, a
/// string is parsed as JSON, and a string that parses to a string is parsed again. Borrowed
/// when nothing needs decoding, so the usual object-shaped request is never copied whole.
fn decode_embedded_json_borrowed(value: &Value) -> Result<Cow<'_, Value>, InvocationError> {
    let Value::String(text) = value else {
        return Ok(Cow::Borrowed(value));
    };
    read_embedded(text, Value::as_str)
        .map(Cow::Owned)
        .map_err(|_| InvocationError::EmbeddedNotJson)
}

/// `text` read as JSON of a `T`, once or twice encoded: when the first reading is a string
/// (`as_text` says which `T`s are), that string is read once more. Two rounds cover the host's
/// double encoding; a third layer is not something it produces. The one rule for every value
/// that may come as JSON text (inputs, the trigger's request, its `Query` and `Headers`).
fn read_embedded<T: serde::de::DeserializeOwned>(
    text: &str,
    as_text: fn(&T) -> Option<&str>,
) -> Result<T, serde_json::Error> {
    let once: T = serde_json::from_str(text)?;
    match as_text(&once) {
        Some(inner) => serde_json::from_str(inner),
        None => Ok(once),
    }
}

/// The caller's HTTP request as the host describes it (docs/protocol/functions-host.md §1.3).
#[derive(Debug, Clone)]
pub struct HttpRequestData {
    /// Original method, upper-case.
    pub method: String,
    /// Query parameters; a repeated parameter arrives comma-joined.
    pub query: Vec<(String, String)>,
    headers: Vec<(String, Vec<String>)>,
    /// Route parameters.
    pub params: Map<String, Value>,
    /// The body as bytes, when the caller sent one.
    pub body: Option<Vec<u8>>,
}

impl HttpRequestData {
    /// Reads a request given as a JSON value, accepting the shapes different host versions
    /// produce: an object, or JSON text of one. Invocations are read by
    /// [`InvocationRequest::parse`]; this is the same reading for requests built in tests and fuzz
    /// targets.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_value(value: &Value) -> Result<Self, InvocationError> {
        let decoded = decode_embedded_json_borrowed(value)?;
        let Value::Object(object) = &*decoded else {
            return Err(InvocationError::Request(RequestFault::NotAnObject));
        };
        Self::from_fields(RequestFields::of_object(object)).map_err(|fault| match fault {
            TriggerFault::Missing => InvocationError::Request(RequestFault::NotAnObject),
            TriggerFault::EmbeddedNotJson => InvocationError::EmbeddedNotJson,
            TriggerFault::Request(fault) => InvocationError::Request(fault),
        })
    }

    /// The request sent as JSON text of an object ([`read_embedded`]), read by the same streaming
    /// reader as an object, so both forms of one request read alike: a `Value` would give
    /// serde_json's raw-value key (`$serde_json::private::RawValue`, a name a query string can
    /// carry) a meaning the streaming reader does not.
    fn from_text(text: &str) -> Result<Self, TriggerFault> {
        let as_text: fn(&TriggerValue) -> Option<&str> = |value| match value {
            TriggerValue::Text(inner) => Some(inner.as_str()),
            _ => None,
        };
        match read_embedded(text, as_text) {
            Ok(TriggerValue::Object(fields)) => Self::from_fields(*fields),
            Ok(TriggerValue::Text(_) | TriggerValue::Other) => {
                Err(TriggerFault::Request(RequestFault::NotAnObject))
            }
            Err(_) => Err(TriggerFault::EmbeddedNotJson),
        }
    }

    /// The request from its fields, each taken by value (nothing is copied).
    fn from_fields(fields: RequestFields) -> Result<Self, TriggerFault> {
        let bad = TriggerFault::Request;
        let value = |field: Option<(String, Member)>| field.map(|(_, value)| value);
        // An object's members; JSON text of an object (older hosts; [`read_embedded`]) read by the
        // same reader as an object; null or absent as none; anything else refused with `fault`.
        let members = |member: Option<Member>, fault: RequestFault| match member {
            None | Some(Member::Other(Value::Null)) => Ok(Vec::new()),
            Some(Member::Object(members)) => Ok(members),
            Some(Member::Other(Value::String(text))) => {
                match read_embedded(&text, |member| match member {
                    Member::Other(Value::String(inner)) => Some(inner.as_str()),
                    _ => None,
                }) {
                    Ok(Member::Object(members)) => Ok(members),
                    Ok(Member::Other(_)) => Err(bad(fault)),
                    Err(_) => Err(TriggerFault::EmbeddedNotJson),
                }
            }
            Some(Member::Other(_)) => Err(bad(fault)),
        };

        let query = members(value(fields.query), RequestFault::Query)?
            .into_iter()
            .map(|(key, value)| (key, scalar_into_string(value)))
            .collect();
        let headers = members(value(fields.headers), RequestFault::Headers)?
            .into_iter()
            .map(|(name, value)| {
                let values = match value {
                    Value::Array(items) => items.into_iter().map(scalar_into_string).collect(),
                    other => vec![scalar_into_string(other)],
                };
                (name, values)
            })
            .collect();
        let params = match value(fields.params) {
            Some(Member::Object(members)) => members.into_iter().collect(),
            _ => Map::new(),
        };
        let method = match value(fields.method) {
            Some(Member::Other(Value::String(method))) => method.to_ascii_uppercase(),
            _ => String::new(),
        };
        let mut this = Self {
            method,
            query,
            headers,
            params,
            body: None,
        };
        this.body = match value(fields.body).map(Member::into_value) {
            None | Some(Value::Null) => None,
            Some(Value::String(body)) if this.body_is_base64() => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .map_err(|_| bad(RequestFault::BodyNotBase64))?,
            ),
            Some(Value::String(body)) => Some(body.into_bytes()),
            // Older hosts parsed JSON bodies; keep the caller's JSON as text.
            Some(other) => Some(other.to_string().into_bytes()),
        };
        Ok(this)
    }

    /// All values of a header, looked up case-insensitively.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        header_values_in(self.headers.iter().map(|(key, values)| (key, values)), name)
    }

    /// All values of a query parameter (exact name, as ASP.NET Core matches case-insensitively).
    pub fn query_values(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The caller's media type: the `Content-Type` value without parameters, trimmed and
    /// lower-cased (media types compare case-insensitively). `None` without a `Content-Type`.
    pub fn media_type(&self) -> Option<String> {
        let value = self.header_values("Content-Type").into_iter().next()?;
        let media_type = value.split(';').next().unwrap_or_default().trim();
        Some(media_type.to_ascii_lowercase())
    }

    /// The host base64-encodes a body only when the media type (parameters ignored) is exactly
    /// `application/octet-stream` or contains `multipart/` (docs/protocol/functions-host.md §1.3,
    /// errata); anything else,
    /// `application/octet-stream-v2` or `application/json; boundary=multipart` included, is text.
    fn body_is_base64(&self) -> bool {
        self.media_type().is_some_and(|media_type| {
            media_type == "application/octet-stream" || media_type.contains("multipart/")
        })
    }
}

/// All values of header `name` among `(name, values)` pairs, matched case-insensitively as HTTP
/// header names are. The one header lookup for every request shape the handler reads.
pub fn header_values_in<'a>(
    headers: impl Iterator<Item = (&'a String, &'a Vec<String>)>,
    name: &str,
) -> Vec<&'a str> {
    headers
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, values)| values.iter().map(String::as_str))
        .collect()
}

fn scalar_into_string(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What the caller of the HTTP function receives, carried in the `http` output binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerResponse {
    /// HTTP status for the caller.
    pub status: u16,
    /// Headers, as strings (the host writes values with `ToString()`).
    pub headers: Vec<(String, String)>,
    /// The body, always a string so the host writes it verbatim (an object would be re-indented).
    pub body: String,
}

impl CallerResponse {
    /// A JSON response with a compact body. Besides the C0 controls serde_json escapes, DEL, C1
    /// controls and U+2028/U+2029 are written as `\uXXXX` escapes too, so a body that quotes
    /// caller text carries no raw control or line-separator character (they can only occur
    /// inside strings, where the escape means the same).
    ///
    /// `body` is any `Serialize` (a typed answer serializes without building a `Value` first).
    /// Should it fail to serialize (a map with non-string keys; none of the handler's answers),
    /// the caller gets a 500 with the one error body shape, never a panic.
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Self {
        let (status, body) = match serde_json::to_string(body) {
            Ok(text) => (status, escape_json_text(text)),
            Err(_) => (
                500,
                r#"{"error":"internal","message":"the answer could not be serialized"}"#.to_owned(),
            ),
        };
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// A SignalR hub-protocol record for the service to forward raw to a client: 200, the JSON
    /// text as serialised (so its key order is the protocol's), escaped as [`Self::json`], then
    /// the record separator `0x1E`. A string body, because the host writes a string verbatim
    /// (an object would be re-indented), and `application/json`, a type the host keeps.
    pub fn hub_record(json_text: String) -> Self {
        let mut body = escape_json_text(json_text);
        body.push('\u{1e}');
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// A response with no body (204, or a bare 200 for the Web PubSub handshake).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The `http` output binding value: `{"statusCode", "headers", "body"}`
/// (docs/protocol/functions-host.md §3), written straight from the response. A header named
/// twice is written once, where it first appears, with its last value (as a JSON object built
/// from the list would hold it).
impl Serialize for CallerResponse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Headers<'a>(&'a [(String, String)]);
        impl Serialize for Headers<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                for (index, (name, _)) in self.0.iter().enumerate() {
                    if self.0[..index].iter().any(|(earlier, _)| earlier == name) {
                        continue;
                    }
                    let last = self
                        .0
                        .iter()
                        .rev()
                        .find(|(other, _)| other == name)
                        .map_or("", |(_, value)| value.as_str());
                    map.serialize_entry(name, last)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("statusCode", &self.status)?;
        map.serialize_entry("headers", &Headers(&self.headers))?;
        map.serialize_entry("body", &self.body)?;
        map.end()
    }
}

/// JSON text with DEL, C1 controls and U+2028/U+2029 written as `\uXXXX` escapes (serde_json
/// escapes only C0 controls); they can only occur inside strings, where the escape means the same.
fn escape_json_text(text: String) -> String {
    if !has_unsafe_in_log(&text) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 12);
    for character in text.chars() {
        if is_unsafe_in_log(character) {
            escaped.push_str(&format!("\\u{:04x}", u32::from(character)));
        } else {
            escaped.push(character);
        }
    }
    escaped
}

/// The handler's answer to the host: `{"Outputs", "Logs", "ReturnValue"}`, serialized in one
/// pass from the caller's response and the other outputs (no `Value` tree is built for it).
#[derive(Debug)]
pub struct InvocationResponse {
    /// The caller's response and where it goes.
    http: (HttpOutput, CallerResponse),
    /// Other output bindings, by name, in the order they were added; a name is kept once.
    outputs: Vec<(String, Value)>,
    logs: Vec<String>,
}

/// Where the caller's response goes.
#[derive(Debug)]
enum HttpOutput {
    /// An output binding of this name.
    Named(String),
    /// `ReturnValue` (the binding named `$return`).
    ReturnValue,
}

impl InvocationResponse {
    /// An answer that sends `response` to the caller through the `http` output named
    /// `http_output` (`$return` puts it in `ReturnValue`, docs/protocol/functions-host.md §3.4).
    pub fn new(http_output: &str, response: CallerResponse, logs: Vec<String>) -> Self {
        let target = if http_output == "$return" {
            HttpOutput::ReturnValue
        } else {
            HttpOutput::Named(http_output.to_owned())
        };
        Self {
            http: (target, response),
            outputs: Vec::new(),
            logs,
        }
    }

    /// Adds a non-http output binding value (replacing one added before under the same name).
    pub fn with_output(mut self, name: &str, value: Value) -> Self {
        match self
            .outputs
            .iter_mut()
            .find(|(existing, _)| existing == name)
        {
            Some((_, existing)) => *existing = value,
            None => self.outputs.push((name.to_owned(), value)),
        }
        self
    }
}

impl Serialize for InvocationResponse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Outputs<'a>(&'a InvocationResponse);
        impl Serialize for Outputs<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                let (target, response) = &self.0.http;
                if let HttpOutput::Named(name) = target {
                    map.serialize_entry(name, response)?;
                }
                for (name, value) in &self.0.outputs {
                    // Binding names are unique per function, so this never skips in practice;
                    // it keeps the object's keys unique whatever a caller of `with_output` does.
                    if matches!(target, HttpOutput::Named(http) if http == name) {
                        continue;
                    }
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
        let (target, response) = &self.http;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("Outputs", &Outputs(self))?;
        map.serialize_entry("Logs", &self.logs)?;
        match target {
            HttpOutput::ReturnValue => map.serialize_entry("ReturnValue", response)?,
            HttpOutput::Named(_) => map.serialize_entry("ReturnValue", &())?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_objects_and_once_and_twice_encoded_strings_alike() {
        let object = json!({"url": "u", "accessToken": "t"});
        let once = Value::String(object.to_string());
        let twice = Value::String(
            Value::String(serde_json::to_string_pretty(&object).expect("json")).to_string(),
        );
        for value in [&object, &once, &twice] {
            assert_eq!(
                decode_embedded_json(value).expect("decodes"),
                object,
                "{value}"
            );
        }
        assert!(decode_embedded_json(&json!("not json")).is_err());
    }

    #[test]
    fn reads_headers_case_insensitively_and_query_as_string_or_object() {
        let request = HttpRequestData::from_value(&json!({
            "Method": "post", "Url": "http://x/api/negotiate",
            "Query": "{\"negotiateVersion\":\"1\"}",
            "Headers": {"authorization": ["Bearer a"], "X-One": "single"}
        }))
        .expect("valid");
        assert_eq!(request.method, "POST");
        assert_eq!(request.header_values("Authorization"), vec!["Bearer a"]);
        assert_eq!(request.header_values("x-one"), vec!["single"]);
        assert_eq!(request.query_values("negotiateversion"), vec!["1"]);
        assert_eq!(request.body, None);
    }

    #[test]
    fn decodes_base64_bodies_only_for_binary_content_types() {
        let binary = HttpRequestData::from_value(&json!({
            "Headers": {"Content-Type": ["application/octet-stream"]}, "Body": "aGk="
        }))
        .expect("valid");
        assert_eq!(binary.body.as_deref(), Some(&b"hi"[..]));
        let text = HttpRequestData::from_value(&json!({
            "Headers": {"Content-Type": ["application/json"]}, "Body": "aGk="
        }))
        .expect("valid");
        assert_eq!(text.body.as_deref(), Some(&b"aGk="[..]));
        let broken = HttpRequestData::from_value(&json!({
            "Headers": {"Content-Type": ["application/octet-stream"]}, "Body": "***"
        }));
        assert!(broken.is_err());
    }

    #[test]
    fn json_bodies_escape_line_separators_and_c1_controls() {
        let value = json!({"group": "a\u{2028}b\u{2029}c\u{85}d\u{7f}e\r\u{1b}"});
        let response = CallerResponse::json(400, &value);
        assert!(
            !response.body.chars().any(is_unsafe_in_log),
            "{:?}",
            response.body
        );
        let parsed: Value = serde_json::from_str(&response.body).expect("still JSON");
        assert_eq!(parsed, value);
    }

    #[test]
    fn only_an_exact_octet_stream_or_a_multipart_media_type_means_a_base64_body() {
        let body_for = |content_type: &str| {
            HttpRequestData::from_value(&json!({
                "Headers": {"Content-Type": [content_type]}, "Body": "aGk="
            }))
            .expect("valid")
            .body
        };
        for binary in [
            "application/octet-stream",
            "Application/Octet-Stream; charset=x",
            "multipart/form-data; boundary=x",
            "application/x-multipart/related",
        ] {
            assert_eq!(body_for(binary).as_deref(), Some(&b"hi"[..]), "{binary}");
        }
        for text in [
            "application/octet-stream-v2",
            "application/json; boundary=multipart",
            "text/plain; note=multipart/",
            "application/multipart",
        ] {
            assert_eq!(body_for(text).as_deref(), Some(&b"aGk="[..]), "{text}");
        }
    }

    /// `input_as` reads what `input` + `deserialize` read, for every form the value can take.
    #[test]
    fn input_as_agrees_with_input_then_deserialize() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)] // read through `Debug` only
        struct Info {
            url: String,
            #[serde(rename = "accessToken")]
            access_token: String,
        }
        let object = json!({"url": "u", "accessToken": "t", "extra": 1});
        let values = [
            object.clone(),
            Value::String(object.to_string()),
            Value::String(Value::String(object.to_string()).to_string()),
            Value::String(format!("  {}", Value::String(object.to_string()))),
            Value::String(r#"{"url": "u", "accessToken": "a", "accessToken": "b"}"#.into()),
            Value::String(
                Value::String(r#"{"url": "u", "accessToken": "a", "accessToken": "b"}"#.into())
                    .to_string(),
            ),
            Value::String(r#"{"url": "u"}"#.into()),
            Value::String("{not json".into()),
            Value::String(r#""{not json""#.into()),
            Value::String(r#""\"twice a string\"""#.into()),
            json!({"url": "u"}),
            json!(3),
        ];
        for value in values {
            let invocation = InvocationRequest {
                trigger: ("req".into(), Err(TriggerFault::Missing)),
                data: [("in".to_owned(), value.clone())].into_iter().collect(),
            };
            let general = match invocation.input("in").expect("present") {
                Err(_) => Err(InputFault::NotJson),
                Ok(decoded) => <Info as serde::Deserialize>::deserialize(&*decoded)
                    .map_err(|_| InputFault::WrongShape),
            };
            let typed = invocation.input_as::<Info>("in").expect("present");
            assert_eq!(format!("{typed:?}"), format!("{general:?}"), "{value}");
        }
        let empty = InvocationRequest {
            trigger: ("req".into(), Err(TriggerFault::Missing)),
            data: Map::new(),
        };
        assert!(empty.input_as::<Info>("in").is_none());
    }

    mod streaming_equals_a_full_parse {
        use proptest::prelude::*;

        use super::*;

        /// JSON text of a value a request member might hold: scalars, header-shaped objects
        /// (with repeated and case-varied names), arrays, and JSON text of an object.
        fn member_value() -> impl Strategy<Value = String> {
            let scalar = prop_oneof![
                Just(r#""GET""#.to_owned()),
                Just(r#""post""#.to_owned()),
                Just(r#""aGk=""#.to_owned()),
                Just(r#""!!not base64""#.to_owned()),
                Just("1".to_owned()),
                Just("2.5".to_owned()),
                Just("true".to_owned()),
                Just("null".to_owned()),
                Just(r#""{not json""#.to_owned()),
            ];
            let header_value = prop_oneof![
                Just(r#"["Bearer a"]"#.to_owned()),
                Just(r#""application/octet-stream""#.to_owned()),
                Just(r#"["multipart/form-data; boundary=x", "b"]"#.to_owned()),
                Just(r#"[1, null, "c"]"#.to_owned()),
                Just("null".to_owned()),
                Just("{}".to_owned()),
            ];
            let header_name = prop_oneof![
                Just("Authorization"),
                Just("authorization"),
                Just("Content-Type"),
                Just("content-type"),
                Just("X-One"),
            ];
            let object =
                proptest::collection::vec((header_name, header_value), 0..5).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(name, value)| format!("{name:?}: {value}"))
                        .collect();
                    format!("{{{}}}", members.join(", "))
                });
            prop_oneof![
                3 => scalar,
                3 => object.clone(),
                1 => object.prop_map(|text| Value::String(text).to_string()),
                1 => Just("[1, \"a\"]".to_owned()),
            ]
        }

        fn request_text() -> impl Strategy<Value = String> {
            let key = prop_oneof![
                Just("Method"),
                Just("method"),
                Just("METHOD"),
                Just("Query"),
                Just("query"),
                Just("Headers"),
                Just("headers"),
                Just("HEADERS"),
                Just("Params"),
                Just("params"),
                Just("Body"),
                Just("body"),
                Just("Url"),
                Just("Identities"),
            ];
            proptest::collection::vec((key, member_value()), 0..9).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(key, value)| format!("{key:?}: {value}"))
                    .collect();
                format!("{{{}}}", members.join(", "))
            })
        }

        fn streamed(trigger_text: &str) -> String {
            let envelope = format!(
                r#"{{"Data": {{"req": {trigger_text}, "connectionInfo": "x"}}, "Metadata": {{}}}}"#
            );
            match InvocationRequest::parse(envelope.as_bytes(), "req") {
                Ok(invocation) => format!("{:?}", invocation.http_request()),
                Err(error) => format!("envelope: {error:?}"),
            }
        }

        fn from_tree(trigger_text: &str) -> String {
            match serde_json::from_str::<Value>(trigger_text) {
                Ok(value) => format!("{:?}", HttpRequestData::from_value(&value).as_ref()),
                Err(_) => "not JSON".to_owned(),
            }
        }

        /// serde_json's raw-value key (a query parameter name a caller can choose) is an
        /// ordinary name in every form of the request: an object, JSON text of one, and a
        /// `Query` given as text. A `Value` would have replaced the object by the key's text.
        #[test]
        fn the_raw_value_key_is_an_ordinary_name_in_every_form() {
            let query = r#"{"$serde_json::private::RawValue": "{\"access_token\":\"x\"}"}"#;
            let object = format!(r#"{{"Method": "GET", "Query": {query}}}"#);
            let as_text = Value::String(object.clone()).to_string();
            let query_as_text = format!(
                r#"{{"Method": "GET", "Query": {}}}"#,
                Value::String(query.to_owned())
            );
            let read = streamed(&object);
            assert!(
                read.contains(r#"("$serde_json::private::RawValue", "{\"access_token\":\"x\"}")"#),
                "{read}"
            );
            assert_eq!(streamed(&as_text), read);
            assert_eq!(streamed(&query_as_text), read);
        }

        /// Past 32 members the repeated names are reduced through a map: the same answer.
        #[test]
        fn for_many_headers_with_repeated_names() {
            let headers: Vec<String> = (0..80)
                .map(|index| format!(r#""X-H{}": ["{index}"]"#, index % 30))
                .chain([r#""authorization": ["Bearer z"]"#.to_owned()])
                .collect();
            let text = format!(
                r#"{{"Method": "POST", "Headers": {{{}}}}}"#,
                headers.join(", ")
            );
            assert_eq!(streamed(&text), from_tree(&text));
            assert!(
                streamed(&text).contains(r#""X-H0", ["60"]"#),
                "{}",
                streamed(&text)
            );
        }

        proptest! {
            /// The streaming read of the trigger finds the same members as a JSON object read
            /// into a map and searched by name (repeated keys, case variants, every shape).
            #[test]
            fn for_any_request_object(text in request_text()) {
                prop_assert_eq!(streamed(&text), from_tree(&text), "{}", text);
            }

            /// The request as JSON text of an object, or as something that is no object.
            #[test]
            fn for_a_request_sent_as_text_or_not_an_object(value in member_value(), text in request_text()) {
                let encoded = Value::String(text.clone()).to_string();
                prop_assert_eq!(streamed(&encoded), from_tree(&encoded), "{}", encoded);
                prop_assert_eq!(streamed(&value), from_tree(&value), "{}", value);
            }
        }
    }

    #[test]
    fn the_response_puts_the_caller_status_in_the_named_output() {
        let response = CallerResponse::json(401, &json!({"error": "invalid_token"}));
        let envelope =
            serde_json::to_value(InvocationResponse::new("res", response, vec!["why".into()]))
                .expect("serializes");
        assert_eq!(envelope["Outputs"]["res"]["statusCode"], 401);
        assert_eq!(
            envelope["Outputs"]["res"]["body"],
            "{\"error\":\"invalid_token\"}"
        );
        assert_eq!(envelope["Logs"], json!(["why"]));
        assert_eq!(envelope["ReturnValue"], Value::Null);
    }

    /// The envelope is written by hand-rolled `Serialize` impls; these are the exact bytes the
    /// host gets: key order, `$return`, other outputs after the http one, a header named twice.
    #[test]
    fn the_envelope_is_written_exactly() {
        let response = CallerResponse::json(200, &json!({"url": "u\u{2028}", "n": 1}))
            .with_header("Cache-Control", "no-store")
            .with_header("content-type", "text/plain")
            .with_header("Cache-Control", "no-cache");
        let named = InvocationResponse::new("res", response.clone(), vec!["a".into()])
            .with_output("signalR", json!([{"target": "t"}]))
            .with_output("queue", json!("first"))
            .with_output("queue", json!("second"));
        assert_eq!(
            serde_json::to_string(&named).expect("serializes"),
            r#"{"Outputs":{"res":{"statusCode":200,"headers":{"Content-Type":"application/json","Cache-Control":"no-cache","content-type":"text/plain"},"body":"{\"url\":\"u\\u2028\",\"n\":1}"},"signalR":[{"target":"t"}],"queue":"second"},"Logs":["a"],"ReturnValue":null}"#
        );
        let returned = InvocationResponse::new("$return", CallerResponse::empty(204), Vec::new());
        assert_eq!(
            serde_json::to_string(&returned).expect("serializes"),
            r#"{"Outputs":{},"Logs":[],"ReturnValue":{"statusCode":204,"headers":{},"body":""}}"#
        );
    }
}
