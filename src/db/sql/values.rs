//! How values cross between Rust and either database: binding parameters ([`Bind`]) and reading
//! columns ([`Column`]) through a row of either kind ([`Row`]).

use std::borrow::Cow;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::{Value, postgres};
use crate::db::StoreError;

/// A Rust value that binds as a statement parameter without copying.
pub trait Bind {
    /// The value as a parameter.
    fn bind(&self) -> Value<'_>;
}

macro_rules! bind_int {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            fn bind(&self) -> Value<'_> {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
bind_int!(i64, i32, u32, u16, u8, u64, usize);

impl Bind for bool {
    fn bind(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Bind for str {
    fn bind(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl Bind for String {
    fn bind(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl Bind for [u8] {
    fn bind(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}

impl Bind for Vec<u8> {
    fn bind(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}

impl<const N: usize> Bind for [u8; N] {
    fn bind(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}

impl<T: Bind> Bind for Option<T> {
    fn bind(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Bind::bind)
    }
}

impl<T: Bind + ?Sized> Bind for &T {
    fn bind(&self) -> Value<'_> {
        (**self).bind()
    }
}

impl Bind for Value<'_> {
    fn bind(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(*i),
            Value::Text(t) => Value::Text(Cow::Borrowed(t)),
            Value::Blob(b) => Value::Blob(Cow::Borrowed(b)),
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Self::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Blob(Cow::Borrowed(v))
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Int(i) => ValueRef::Integer(*i),
            Self::Text(t) => ValueRef::Text(t.as_bytes()),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Self::Int(i) if *ty == Type::BOOL => (*i != 0).to_sql(ty, out),
            Self::Int(i) if <i64 as ToSql>::accepts(ty) => i.to_sql(ty, out),
            Self::Text(t) if <&str as ToSql>::accepts(ty) => t.as_ref().to_sql(ty, out),
            Self::Blob(b) if <&[u8] as ToSql>::accepts(ty) => b.as_ref().to_sql(ty, out),
            other => Err(format!("cannot bind {other:?} to a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A Rust value read from a column.
pub trait Column: Sized {
    /// Converts column `i`'s value.
    fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError>;
}

impl Column for Value<'static> {
    fn column(v: Value<'static>, _: usize) -> Result<Self, StoreError> {
        Ok(v)
    }
}

impl Column for i64 {
    fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError> {
        match v {
            Value::Int(n) => Ok(n),
            Value::Null => Err(null(i)),
            other => Err(kind(i, "an integer", &other)),
        }
    }
}

macro_rules! column_int {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError> {
                let n = i64::column(v, i)?;
                <$t>::try_from(n).map_err(|_| kind(i, stringify!($t), &Value::Int(n)))
            }
        }
    )*};
}
column_int!(i32, u32, u16, u64, usize);

impl Column for bool {
    fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError> {
        Ok(i64::column(v, i)? != 0)
    }
}

impl Column for String {
    fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError> {
        match v {
            Value::Text(t) => Ok(t.into_owned()),
            Value::Null => Err(null(i)),
            other => Err(kind(i, "text", &other)),
        }
    }
}

impl Column for Vec<u8> {
    fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError> {
        match v {
            Value::Blob(b) => Ok(b.into_owned()),
            Value::Null => Err(null(i)),
            other => Err(kind(i, "bytes", &other)),
        }
    }
}

impl<T: Column> Column for Option<T> {
    fn column(v: Value<'static>, i: usize) -> Result<Self, StoreError> {
        match v {
            Value::Null => Ok(None),
            v => T::column(v, i).map(Some),
        }
    }
}

/// One row of a result, read by column index.
pub enum Row<'a> {
    /// A SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` as it is stored.
    pub fn value(&self, i: usize) -> Result<Value<'static>, StoreError> {
        Ok(match self {
            Self::Sqlite(r) => match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                rusqlite::types::ValueRef::Real(v) => Value::Text(Cow::Owned(v.to_string())),
                rusqlite::types::ValueRef::Text(t) => {
                    Value::Text(Cow::Owned(String::from_utf8_lossy(t).into_owned()))
                }
                rusqlite::types::ValueRef::Blob(b) => Value::Blob(Cow::Owned(b.to_vec())),
            },
            Self::Postgres(r) => {
                let ty = r.columns()[i].type_();
                if *ty == Type::INT8 {
                    r.try_get::<_, Option<i64>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, Value::Int)
                } else if *ty == Type::INT4 {
                    r.try_get::<_, Option<i32>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, |v| Value::Int(v.into()))
                } else if *ty == Type::BOOL {
                    r.try_get::<_, Option<bool>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, |v| Value::Int(v.into()))
                } else if *ty == Type::BYTEA {
                    r.try_get::<_, Option<Vec<u8>>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, |b| Value::Blob(Cow::Owned(b)))
                } else {
                    r.try_get::<_, Option<String>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, |t| Value::Text(Cow::Owned(t)))
                }
            }
        })
    }

    /// Column `i` as a `T`.
    pub fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        T::column(self.value(i)?, i)
    }

    /// The first `width` columns as they are stored.
    pub fn values(&self, width: usize) -> Result<Vec<Value<'static>>, StoreError> {
        (0..width).map(|i| self.value(i)).collect()
    }
}

fn null(i: usize) -> StoreError {
    StoreError::Corrupt {
        what: "column",
        detail: format!("column {i} is NULL where a value is required"),
    }
}

fn kind(i: usize, wanted: &str, found: &Value<'_>) -> StoreError {
    StoreError::Corrupt {
        what: "column",
        detail: format!("column {i} should be {wanted}, found {found:?}"),
    }
}
