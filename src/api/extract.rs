//! Request extractors that answer in the API's error shape: the JSON body (size limit,
//! content type, unknown fields named), page parameters, and the caller's token.

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::model::auth::Caller;
use crate::model::{PageRequest, Role, TenantId};
use crate::service::auth::authenticate;

/// A JSON body, limited in size and in the time it may take to arrive; unknown fields and
/// wrong types are 422 naming the field. Not read with the request: [`JsonBody::parse`] reads
/// it, and a handler calls that after its role check, so a caller without the role gets `403`
/// at once, whatever it sends and however slowly.
pub struct JsonBody<T>(Unread, std::marker::PhantomData<T>);

/// An optional JSON body: none (an empty body) or `{}` give `T::default()`. Read by
/// [`OptionalJson::parse`] after the role check, like [`JsonBody`].
pub struct OptionalJson<T>(Unread, std::marker::PhantomData<T>);

/// A request body not read yet, with the limits it is read under.
pub struct Unread {
    request: Request,
    limit: usize,
    timeout: std::time::Duration,
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// Reads the body and parses it, or says why it is refused.
    pub async fn parse(self) -> Result<T, ApiError> {
        let body = self.0.read().await?;
        if body.is_empty() {
            return Err(ApiError::malformed_json("the request needs a JSON body"));
        }
        parse_json(&body)
    }
}

impl<T: DeserializeOwned + Default> OptionalJson<T> {
    /// Reads the body and parses it (or gives the default), or says why it is refused.
    pub async fn parse(self) -> Result<T, ApiError> {
        let body = self.0.read().await?;
        if body.is_empty() {
            return Ok(T::default());
        }
        parse_json(&body)
    }
}

impl Unread {
    fn new(request: Request, state: &AppState) -> Self {
        Self {
            request,
            limit: state.max_body_bytes,
            timeout: state.body_read_timeout,
        }
    }

    /// The body: `413` when it states or reaches a size over the limit, `415` when it is not
    /// JSON, `408` when it does not arrive in time.
    async fn read(self) -> Result<bytes::Bytes, ApiError> {
        let Self {
            request,
            limit,
            timeout,
        } = self;
        let json = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        let body = read_limited(request, limit, timeout).await?;
        if !body.is_empty() && !json {
            return Err(ApiError::unsupported_media_type());
        }
        Ok(body)
    }
}

/// Reads a request's body of at most `limit` bytes, which must arrive within `timeout`. A
/// `Content-Length` over the limit is refused before anything is read.
pub(super) async fn read_limited(
    request: Request,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let body = axum::body::to_bytes(request.into_body(), limit);
    match tokio::time::timeout(timeout, body).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(ApiError::too_large(limit)),
        Err(_) => Err(ApiError::body_timeout(timeout)),
    }
}

/// A serde message in the API's words: `invalid type: string "5000", expected u32` becomes
/// `must be a whole number, not the text "5000"`.
fn plain_words(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.replace("missing field", "missing required field");
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let expected = match expected {
        e if ["u8", "u16", "u32", "u64", "usize", "i32", "i64"]
            .iter()
            .any(|t| e.starts_with(t)) =>
        {
            "a whole number".to_owned()
        }
        e if e.starts_with("f32") || e.starts_with("f64") => "a number".to_owned(),
        "a string" => "text (a JSON string)".to_owned(),
        "a boolean" => "true or false".to_owned(),
        e if e.starts_with("a sequence") => "a list".to_owned(),
        e if e.starts_with("struct ") || e.starts_with("a map") => "an object".to_owned(),
        e => e.to_owned(),
    };
    let got = match got.split_once(' ') {
        Some(("string", value)) => format!("the text {value}"),
        Some(("integer", value)) | Some(("floating", value)) => format!("the number {value}"),
        Some(("boolean", value)) => value.to_owned(),
        _ => got.to_owned(),
    };
    format!("must be {expected}, not {got}")
}

/// Parses a JSON object, naming the field at fault: not JSON (cut short, bytes after it) is
/// `400 malformed_json`; JSON that is not an object, or whose fields are wrong, is `422`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    // As an `Object`: every body here is an object, never a list of a struct's fields.
    serde_path_to_error::deserialize::<_, Object<T>>(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.classify() != serde_json::error::Category::Data {
                return not_json(&inner);
            }
            // A wrong field in a body cut short further on: the body is not JSON first.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                return not_json(&syntax);
            }
            let message = inner.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            let message = plain_words(message);
            if path == "." {
                ApiError::invalid(message)
            } else {
                ApiError::invalid(format!("{path}: {message}"))
            }
        })
        .and_then(|Object(parsed)| de.end().map(|()| parsed).map_err(|e| not_json(&e)))
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::malformed_json(format!("the body is not valid JSON: {e}"))
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(Unread::new(req, state), std::marker::PhantomData))
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(Unread::new(req, state), std::marker::PhantomData))
    }
}

/// Query parameters as pairs, for routes that read more than paging.
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// The value of one parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `page` (0-based) and `size` (1–100, default 20); anything else is 422.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let number = match self.get("page") {
            None => 0,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 1_000_000)
                .ok_or_else(|| ApiError::invalid("page must be a whole number from 0"))?,
        };
        let size = match self.get("size") {
            None => 20,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=PageRequest::MAX_SIZE).contains(n))
                .ok_or_else(|| ApiError::invalid("size must be a whole number from 1 to 100"))?,
        };
        Ok(PageRequest { number, size })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self(pairs))
    }
}

/// The checked caller of a request.
#[derive(Clone, Copy)]
pub struct Auth(pub Caller);

impl Auth {
    /// Only the operator token may do this.
    pub fn operator(&self) -> Result<(), ApiError> {
        match self.0 {
            Caller::Operator => Ok(()),
            Caller::Tenant { .. } => Err(ApiError::forbidden(
                "this route needs the operator token, not a tenant API key",
            )),
        }
    }

    /// A tenant admin calling with an API key, not a portal link: for managing credentials
    /// (keys, portal links), which a portal link may not mint, list or revoke.
    pub fn tenant_admin_with_key(&self) -> Result<TenantId, ApiError> {
        let tenant = self.tenant(Role::Admin)?;
        match self.0 {
            Caller::Tenant {
                via: crate::model::auth::Credential::PortalLink(_),
                ..
            } => Err(ApiError::forbidden(
                "keys and portal links are managed with an API key, not from a portal link",
            )),
            _ => Ok(tenant),
        }
    }

    /// A tenant key with at least `role`; answers its tenant.
    pub fn tenant(&self, role: Role) -> Result<TenantId, ApiError> {
        match self.0 {
            Caller::Tenant {
                tenant_id,
                role: has,
                ..
            } if has >= role => Ok(tenant_id),
            Caller::Tenant { role: has, .. } => Err(ApiError::forbidden(format!(
                "this needs a key with the {} role; this key is {}",
                role.as_str(),
                has.as_str()
            ))),
            Caller::Operator => Err(ApiError::forbidden(
                "the operator token manages tenants; use a tenant API key here",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Checked already on its way here (a plan gate): not again.
        if let Some(auth) = parts.extensions.get::<Auth>() {
            return Ok(*auth);
        }
        let mut given = parts.headers.get_all(http::header::AUTHORIZATION).iter();
        let (header, second) = (given.next(), given.next());
        if second.is_some() {
            return Err(ApiError::malformed(
                "send one Authorization header, not several",
            ));
        }
        let token = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let now = crate::model::now_ms();
        match authenticate(&state.store, &state.operator_hash, token, now).await? {
            Some(caller) => Ok(Self(caller)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// For `#[serde(deserialize_with)]` on PATCH fields: `Some(None)` for an explicit `null`,
/// `None` (with `#[serde(default)]`) for an absent field.
pub(super) fn nullable<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// A whole number as JSON (and JSON Schema) counts one: `5000` and `5000.0` alike, refused
/// when negative, fractional or too large for `T`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Whole<T>(pub T);

impl<'de, T: TryFrom<u64>> serde::Deserialize<'de> for Whole<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected, Visitor};
        struct Expect<T>(std::marker::PhantomData<T>);
        impl<T: TryFrom<u64>> Visitor<'_> for Expect<T> {
            type Value = Whole<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                let most = std::any::type_name::<T>();
                write!(f, "{most} (a whole number in its range)")
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Whole<T>, E> {
                T::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Whole<T>, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
                }
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Whole<T>, E> {
                // Below 2^64 and without a fraction, the conversion is exact.
                if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                    self.visit_u64(v as u64)
                } else {
                    Err(E::invalid_type(Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(Expect(std::marker::PhantomData))
    }
}

/// A JSON object read as `T`: a body, or an object inside one. (A derived struct also takes
/// a JSON list of its fields in order; a request's objects are objects.)
#[derive(Debug, Default)]
pub(super) struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map (an object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Object<T>, A::Error> {
                // The fields stream through to `T`: no copy, and error paths stay whole.
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// Checks a display name: 1–200 characters, not blank.
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        Err(ApiError::invalid("name must be 1 to 200 characters"))
    } else {
        Ok(())
    }
}

/// The body of an action that takes no options: none, empty or `{}`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct NoFields {}

/// Path parameters; one that is not valid UTF-8 names nothing hookd has: a JSON `404`.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|_| ApiError::not_found("resource"))
    }
}

#[cfg(test)]
mod tests {
    use super::plain_words;

    #[test]
    fn serde_messages_are_put_in_plain_words() {
        let cases = [
            (
                r#"invalid type: string "5000", expected u32"#,
                r#"must be a whole number, not the text "5000""#,
            ),
            (
                "invalid type: integer `5`, expected a string",
                "must be text (a JSON string), not the number `5`",
            ),
            (
                "invalid type: boolean `true`, expected a sequence",
                "must be a list, not `true`",
            ),
            (
                "invalid type: null, expected u32",
                "must be a whole number, not null",
            ),
            ("missing field `url`", "missing required field `url`"),
        ];
        for (serde, plain) in cases {
            assert_eq!(plain_words(serde), plain);
        }
    }
}
