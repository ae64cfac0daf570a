//! Postgres binary wire values straight into Arrow builders.
//!
//! Each result column gets a [`Decoder`] chosen from its Postgres type and the Arrow type the
//! plan expects. Values are read from the row's raw bytes (no intermediate Rust value, no
//! allocation per value); what cannot be represented exactly (a `numeric` wider than its
//! Arrow decimal, an infinite date, a multi-dimensional array) is an error, never a rounded or
//! dropped value.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::NullBufferBuilder;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, ListArray, PrimitiveBuilder,
    StringBuilder,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{
    i256, ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, Decimal256Type, DecimalType,
    Field, FieldRef, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    IntervalMonthDayNano, IntervalMonthDayNanoType, Time64MicrosecondType,
    TimestampMicrosecondType, UInt32Type,
};
use tokio_postgres::types::{FromSql, Kind, Type};

use crate::types::UNCONSTRAINED_NUMERIC;

/// Days and microseconds between the Unix epoch and Postgres's, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A column's raw bytes in Postgres's binary format.
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Appends one column's values and hands them over as an Arrow array.
pub(crate) trait Decoder: Send {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String>;
    fn finish(&mut self) -> ArrayRef;
}

/// Counts the NULLs of a column whose only possible value is NULL.
struct Nulls(usize);

impl Decoder for Nulls {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            None => {
                self.0 += 1;
                Ok(())
            }
            Some(_) => Err("a value where only NULL was expected".to_string()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(datafusion::arrow::array::NullArray::new(std::mem::take(
            &mut self.0,
        )))
    }
}

/// The decoder for values of `pg` read into (or cast afterwards to) `target`.
pub(crate) fn decoder(pg: &Type, target: &DataType) -> Result<Box<dyn Decoder>, String> {
    // A column DataFusion types as Null (`min(NULL)`, `NULL AS x`) comes back as text or
    // whatever Postgres made of the untyped NULL: every value must be NULL.
    if *target == DataType::Null {
        return Ok(Box::new(Nulls(0)));
    }
    match pg.kind() {
        Kind::Enum(_) => return Ok(Box::new(Text::new(TextKind::Plain))),
        Kind::Domain(base) => return decoder(base, target),
        Kind::Array(element) => {
            let item = match target {
                DataType::List(field) | DataType::LargeList(field) => field.data_type().clone(),
                _ => DataType::Null,
            };
            let inner = decoder(element, &item)?;
            let item_type = if item == DataType::Null {
                inner_type(element)
            } else {
                item
            };
            return Ok(Box::new(List::new(
                Arc::new(Field::new("item", item_type, true)),
                inner,
            )));
        }
        _ => {}
    }
    Ok(match *pg {
        Type::INT2 => primitive::<Int16Type>(|b| Ok(i16::from_be_bytes(fixed(b)?))),
        Type::INT4 => primitive::<Int32Type>(|b| Ok(i32::from_be_bytes(fixed(b)?))),
        Type::INT8 => primitive::<Int64Type>(|b| Ok(i64::from_be_bytes(fixed(b)?))),
        Type::OID => primitive::<UInt32Type>(|b| Ok(u32::from_be_bytes(fixed(b)?))),
        Type::FLOAT4 => primitive::<Float32Type>(|b| Ok(f32::from_be_bytes(fixed(b)?))),
        Type::FLOAT8 => primitive::<Float64Type>(|b| Ok(f64::from_be_bytes(fixed(b)?))),
        Type::DATE => primitive::<Date32Type>(date),
        Type::TIME => primitive::<Time64MicrosecondType>(|b| Ok(i64::from_be_bytes(fixed(b)?))),
        Type::TIMESTAMP => primitive::<TimestampMicrosecondType>(timestamp),
        Type::TIMESTAMPTZ => Box::new(Primitive {
            builder: PrimitiveBuilder::<TimestampMicrosecondType>::new().with_timezone("UTC"),
            parse: timestamp,
        }),
        Type::INTERVAL => primitive::<IntervalMonthDayNanoType>(interval),
        Type::BOOL => Box::new(Bool(BooleanBuilder::new())),
        Type::BYTEA => Box::new(Bytes(BinaryBuilder::new())),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::CHAR
        | Type::JSON
        | Type::UNKNOWN => Box::new(Text::new(TextKind::Plain)),
        Type::JSONB => Box::new(Text::new(TextKind::Jsonb)),
        Type::UUID => Box::new(Text::new(TextKind::Uuid)),
        Type::NUMERIC => numeric(target)?,
        _ => return Err(format!("the Postgres type `{pg}` cannot be read")),
    })
}

/// The Arrow type a decoder for `pg` produces when the plan does not say.
fn inner_type(pg: &Type) -> DataType {
    decoder(pg, &DataType::Null)
        .map(|mut d| d.finish().data_type().clone())
        .unwrap_or(DataType::Null)
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

struct Primitive<T: ArrowPrimitiveType> {
    builder: PrimitiveBuilder<T>,
    parse: fn(&[u8]) -> Result<T::Native, String>,
}

fn primitive<T: ArrowPrimitiveType>(
    parse: fn(&[u8]) -> Result<T::Native, String>,
) -> Box<dyn Decoder>
where
    PrimitiveBuilder<T>: Send,
{
    Box::new(Primitive {
        builder: PrimitiveBuilder::<T>::new(),
        parse,
    })
}

impl<T: ArrowPrimitiveType> Decoder for Primitive<T>
where
    PrimitiveBuilder<T>: Send,
{
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            Some(bytes) => self.builder.append_value((self.parse)(bytes)?),
            None => self.builder.append_null(),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.builder.finish())
    }
}

fn date(bytes: &[u8]) -> Result<i32, String> {
    let days = i32::from_be_bytes(fixed(bytes)?);
    if days == i32::MAX || days == i32::MIN {
        return Err("an infinite date has no Arrow representation".to_string());
    }
    days.checked_add(PG_EPOCH_DAYS)
        .ok_or_else(|| "a date out of Arrow's range".to_string())
}

fn timestamp(bytes: &[u8]) -> Result<i64, String> {
    let micros = i64::from_be_bytes(fixed(bytes)?);
    if micros == i64::MAX || micros == i64::MIN {
        return Err("an infinite timestamp has no Arrow representation".to_string());
    }
    micros
        .checked_add(PG_EPOCH_MICROS)
        .ok_or_else(|| "a timestamp out of Arrow's range".to_string())
}

fn interval(bytes: &[u8]) -> Result<IntervalMonthDayNano, String> {
    let bytes: [u8; 16] = fixed(bytes)?;
    let micros = i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"));
    let days = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let months = i32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let nanos = micros
        .checked_mul(1_000)
        .ok_or_else(|| "an interval whose time part exceeds Arrow's range".to_string())?;
    Ok(IntervalMonthDayNano::new(months, days, nanos))
}

struct Bool(BooleanBuilder);

impl Decoder for Bool {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            Some([b]) => self.0.append_value(*b != 0),
            Some(other) => return Err(format!("expected 1 byte, got {}", other.len())),
            None => self.0.append_null(),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct Bytes(BinaryBuilder);

impl Decoder for Bytes {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        self.0.append_option(value);
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

#[derive(Clone, Copy)]
enum TextKind {
    Plain,
    /// A version byte, then the JSON text.
    Jsonb,
    /// 16 bytes, shown as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    Uuid,
}

struct Text {
    builder: StringBuilder,
    kind: TextKind,
}

impl Text {
    fn new(kind: TextKind) -> Self {
        Self {
            builder: StringBuilder::new(),
            kind,
        }
    }
}

impl Decoder for Text {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some(bytes) = value else {
            self.builder.append_null();
            return Ok(());
        };
        match self.kind {
            TextKind::Plain => self.builder.append_value(utf8(bytes)?),
            TextKind::Jsonb => match bytes.split_first() {
                Some((1, json)) => self.builder.append_value(utf8(json)?),
                _ => return Err("an unknown jsonb format version".to_string()),
            },
            TextKind::Uuid => {
                let b: [u8; 16] = fixed(bytes)?;
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        self.builder.write_char('-').expect("in memory");
                    }
                    write!(self.builder, "{byte:02x}").expect("in memory");
                }
                self.builder.append_value("");
            }
        }
        Ok(())
    }

    /// The next batch's builder is sized from this one (an eighth more): grown by doubling
    /// from empty, a batch's text would hold up to twice the memory it needs.
    fn finish(&mut self) -> ArrayRef {
        let rows = datafusion::arrow::array::ArrayBuilder::len(&self.builder);
        let bytes = self.builder.values_slice().len();
        let next = StringBuilder::with_capacity(rows, bytes + bytes / 8);
        Arc::new(std::mem::replace(&mut self.builder, next).finish())
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("text that is not UTF-8: {e}"))
}

/// `numeric` into the Arrow type the plan expects: a decimal (exactly, or an error), an
/// integer or float (an aggregate such as Postgres's `sum(bigint)` returns numeric), or text.
fn numeric(target: &DataType) -> Result<Box<dyn Decoder>, String> {
    let decimal128 = |p, s| decimal::<Decimal128Type>(p, s, i256::as_i128);
    match target {
        DataType::Decimal128(p, s) => decimal128(*p, *s),
        DataType::Decimal256(p, s) => decimal::<Decimal256Type>(*p, *s, |m| m),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            Ok(Box::new(NumericFloat(Float64Builder::new())))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => decimal128(38, 0),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Ok(Box::new(NumericText(StringBuilder::new())))
        }
        _ => {
            let (p, s) = UNCONSTRAINED_NUMERIC;
            decimal128(p, s)
        }
    }
}

/// A `numeric` in Postgres's binary format: base-10000 digits with a weight.
struct PgNumeric<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

impl<'a> PgNumeric<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < 8 {
            return Err("a truncated numeric".to_string());
        }
        let ndigits = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        let digits = &bytes[8..];
        if digits.len() != ndigits * 2 {
            return Err("a truncated numeric".to_string());
        }
        Ok(Self {
            weight: i16::from_be_bytes([bytes[2], bytes[3]]),
            sign: u16::from_be_bytes([bytes[4], bytes[5]]),
            dscale: u16::from_be_bytes([bytes[6], bytes[7]]),
            digits,
        })
    }

    fn digits(&self) -> impl Iterator<Item = i16> + '_ {
        self.digits
            .chunks_exact(2)
            .map(|d| i16::from_be_bytes([d[0], d[1]]))
    }

    fn special(&self) -> Option<&'static str> {
        match self.sign {
            NUMERIC_NAN => Some("NaN"),
            NUMERIC_PINF => Some("Infinity"),
            NUMERIC_NINF => Some("-Infinity"),
            _ => None,
        }
    }

    /// [`PgNumeric::mantissa`] in 128 bits, for the common value: at most 9 base-10000
    /// digits (36 decimal digits, so the digits never overflow), a result within `i128`, and
    /// no decimal place past `scale`. `None` for anything else (the exact path then decides,
    /// and words the error).
    fn mantissa_i128(&self, scale: i8) -> Option<i128> {
        if self.special().is_some() {
            return None;
        }
        let ndigits = self.digits.len() / 2;
        if ndigits > 9 {
            return None;
        }
        let mut m: i128 = 0;
        for d in self.digits() {
            m = m * 10_000 + i128::from(d);
        }
        if m == 0 {
            return Some(0);
        }
        let exponent = 4 * (i32::from(self.weight) - ndigits as i32 + 1) + i32::from(scale);
        if exponent < 0 {
            let divisor = 10i128.checked_pow(exponent.unsigned_abs())?;
            if m % divisor != 0 {
                return None;
            }
            m /= divisor;
        } else if exponent > 0 {
            m = m.checked_mul(10i128.checked_pow(exponent as u32)?)?;
        }
        Some(if self.sign == NUMERIC_NEG { -m } else { m })
    }

    /// The value times 10^scale, exactly, if it is an integer that fits in 76 digits.
    fn mantissa(&self, scale: i8) -> Result<i256, String> {
        if let Some(special) = self.special() {
            return Err(format!("{special} has no decimal representation"));
        }
        let overflow = || format!("{self} does not fit");
        let ten_thousand = i256::from_i128(10_000);
        let mut m = i256::ZERO;
        for d in self.digits() {
            m = m
                .checked_mul(ten_thousand)
                .and_then(|m| m.checked_add(i256::from_i128(i128::from(d))))
                .ok_or_else(overflow)?;
        }
        let ndigits = self.digits.len() as i32 / 2;
        let mut exponent = 4 * (i32::from(self.weight) - ndigits + 1) + i32::from(scale);
        let ten = i256::from_i128(10);
        while exponent < 0 {
            if m == i256::ZERO {
                break;
            }
            if m.checked_rem(ten) != Some(i256::ZERO) {
                return Err(format!("{self} has more than {scale} decimal places"));
            }
            m = m.checked_div(ten).ok_or_else(overflow)?;
            exponent += 1;
        }
        if exponent > 0 && m != i256::ZERO {
            let factor = ten.checked_pow(exponent as u32).ok_or_else(overflow)?;
            m = m.checked_mul(factor).ok_or_else(overflow)?;
        }
        Ok(if self.sign == NUMERIC_NEG {
            m.checked_neg().ok_or_else(overflow)?
        } else {
            m
        })
    }
}

impl std::fmt::Display for PgNumeric<'_> {
    /// The value as Postgres prints it: all integer digits, `dscale` fraction digits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(special) = self.special() {
            return f.write_str(special);
        }
        if self.sign == NUMERIC_NEG {
            f.write_char('-')?;
        }
        let digits: Vec<i16> = self.digits().collect();
        let digit = |i: i32| -> i16 {
            usize::try_from(i)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0)
        };
        let weight = i32::from(self.weight);
        if weight < 0 {
            f.write_char('0')?;
        } else {
            write!(f, "{}", digit(0))?;
            for i in 1..=weight {
                write!(f, "{:04}", digit(i))?;
            }
        }
        let dscale = usize::from(self.dscale);
        if dscale > 0 {
            f.write_char('.')?;
            let mut written = 0;
            let mut i = weight + 1;
            while written < dscale {
                let group = format!("{:04}", digit(i));
                for c in group.chars().take(dscale - written) {
                    f.write_char(c)?;
                    written += 1;
                }
                i += 1;
            }
        }
        Ok(())
    }
}

fn ten_to(precision: u8) -> i256 {
    i256::from_i128(10).wrapping_pow(u32::from(precision))
}

/// `numeric` into a decimal of fixed precision and scale, exactly or not at all.
struct NumericDecimal<T: DecimalType> {
    builder: PrimitiveBuilder<T>,
    precision: u8,
    scale: i8,
    /// 10^precision: every mantissa is below it in magnitude (in 128 bits too, up to 38).
    limit: i256,
    limit_i128: Option<i128>,
    /// The mantissa in `T`'s native width; the precision check makes it fit.
    narrow: fn(i256) -> T::Native,
}

fn decimal<T: DecimalType>(
    precision: u8,
    scale: i8,
    narrow: fn(i256) -> T::Native,
) -> Result<Box<dyn Decoder>, String>
where
    PrimitiveBuilder<T>: Send,
{
    Ok(Box::new(NumericDecimal::<T> {
        builder: PrimitiveBuilder::<T>::new()
            .with_precision_and_scale(precision, scale)
            .map_err(|e| e.to_string())?,
        precision,
        scale,
        limit: ten_to(precision),
        limit_i128: 10i128.checked_pow(u32::from(precision)),
        narrow,
    }))
}

impl<T: DecimalType> Decoder for NumericDecimal<T>
where
    PrimitiveBuilder<T>: Send,
{
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some(bytes) = value else {
            self.builder.append_null();
            return Ok(());
        };
        let n = PgNumeric::parse(bytes)?;
        if let (Some(m), Some(limit)) = (n.mantissa_i128(self.scale), self.limit_i128) {
            if m < limit && m > -limit {
                self.builder.append_value((self.narrow)(i256::from_i128(m)));
                return Ok(());
            }
        }
        let m = n.mantissa(self.scale)?;
        let limit = self.limit;
        if m >= limit || m <= limit.wrapping_neg() {
            return Err(format!(
                "{n} does not fit in decimal({}, {})",
                self.precision, self.scale
            ));
        }
        self.builder.append_value((self.narrow)(m));
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.builder.finish())
    }
}

struct NumericFloat(Float64Builder);

impl Decoder for NumericFloat {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            Some(bytes) => {
                let n = PgNumeric::parse(bytes)?;
                let v = match n.sign {
                    NUMERIC_NAN => f64::NAN,
                    NUMERIC_PINF => f64::INFINITY,
                    NUMERIC_NINF => f64::NEG_INFINITY,
                    _ => n.to_string().parse().map_err(|e| format!("{n}: {e}"))?,
                };
                self.0.append_value(v);
            }
            None => self.0.append_null(),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct NumericText(StringBuilder);

impl Decoder for NumericText {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            Some(bytes) => {
                write!(self.0, "{}", PgNumeric::parse(bytes)?).expect("in memory");
                self.0.append_value("");
            }
            None => self.0.append_null(),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// A one-dimensional array: header, then each element's length and bytes.
struct List {
    field: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    inner: Box<dyn Decoder>,
}

impl List {
    fn new(field: FieldRef, inner: Box<dyn Decoder>) -> Self {
        Self {
            field,
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
            inner,
        }
    }
}

fn read_i32(bytes: &[u8], at: usize) -> Result<i32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| "a truncated array".to_string())
}

impl Decoder for List {
    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let last = *self.offsets.last().expect("starts with 0");
        let Some(bytes) = value else {
            self.nulls.append_null();
            self.offsets.push(last);
            return Ok(());
        };
        let dimensions = read_i32(bytes, 0)?;
        let (len, mut at) = match dimensions {
            0 => (0, 12),
            1 => (read_i32(bytes, 12)?, 20),
            n => {
                return Err(format!(
                    "a {n}-dimensional array; only one-dimensional arrays have an Arrow mapping"
                ))
            }
        };
        for _ in 0..len {
            let size = read_i32(bytes, at)?;
            at += 4;
            if size < 0 {
                self.inner.append(None)?;
            } else {
                let end = at + size as usize;
                let element = bytes
                    .get(at..end)
                    .ok_or_else(|| "a truncated array".to_string())?;
                self.inner.append(Some(element))?;
                at = end;
            }
        }
        self.nulls.append_non_null();
        self.offsets.push(
            last.checked_add(len)
                .ok_or_else(|| "an array column over 2^31 elements per batch".to_string())?,
        );
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let values = self.inner.finish();
        let field = Arc::new(Field::new(
            self.field.name(),
            values.data_type().clone(),
            true,
        ));
        Arc::new(ListArray::new(
            field,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            values,
            self.nulls.finish(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend(dscale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_text_and_mantissa() {
        // 12345.678
        let b = numeric_bytes(1, 0, 3, &[1, 2345, 6780]);
        let n = PgNumeric::parse(&b).unwrap();
        assert_eq!(n.to_string(), "12345.678");
        assert_eq!(n.mantissa(3).unwrap(), i256::from_i128(12_345_678));
        assert_eq!(n.mantissa(5).unwrap(), i256::from_i128(1_234_567_800));
        assert!(n.mantissa(2).is_err());
        // -0.05
        let b = numeric_bytes(-1, NUMERIC_NEG, 2, &[500]);
        let n = PgNumeric::parse(&b).unwrap();
        assert_eq!(n.to_string(), "-0.05");
        assert_eq!(n.mantissa(2).unwrap(), i256::from_i128(-5));
        // 1e8 with no fraction: digits [1] at weight 2.
        let b = numeric_bytes(2, 0, 0, &[1]);
        let n = PgNumeric::parse(&b).unwrap();
        assert_eq!(n.to_string(), "100000000");
        assert_eq!(n.mantissa(0).unwrap(), i256::from_i128(100_000_000));
        // zero
        let b = numeric_bytes(0, 0, 2, &[]);
        assert_eq!(PgNumeric::parse(&b).unwrap().to_string(), "0.00");
        let b = numeric_bytes(0, NUMERIC_NAN, 0, &[]);
        assert!(PgNumeric::parse(&b).unwrap().mantissa(0).is_err());
    }

    /// The 128-bit path gives the exact path's mantissa whenever it gives one (and gives way
    /// to it, `None`, for what it cannot do: a wrong answer here would be a wrong value).
    #[test]
    fn the_128_bit_mantissa_agrees_with_the_exact_one() {
        let mut cases = 0;
        let digit_sets: [&[i16]; 9] = [
            &[],
            &[1],
            &[9999],
            &[1, 2345, 6780],
            &[500],
            &[12, 0, 0, 5000],
            &[9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[1700, 1411, 8346, 469, 2317, 3168, 7303, 7158, 8410, 5727],
        ];
        for digits in digit_sets {
            for weight in [-12i16, -3, -1, 0, 1, 2, 5, 9, 10, 20] {
                for sign in [0, NUMERIC_NEG] {
                    for scale in [0i8, 2, 4, 10, 18, 38] {
                        let b = numeric_bytes(weight, sign, scale.max(0) as u16, digits);
                        let n = PgNumeric::parse(&b).unwrap();
                        let exact = n.mantissa(scale).ok();
                        // `None` is always safe: the exact path then runs.
                        if let Some(fast) = n.mantissa_i128(scale) {
                            assert_eq!(Some(i256::from_i128(fast)), exact, "{n} at {scale}");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 300, "{cases}");
        let b = numeric_bytes(0, NUMERIC_NAN, 0, &[]);
        assert_eq!(PgNumeric::parse(&b).unwrap().mantissa_i128(0), None);
        // 12345.678 has 3 places: not at scale 2.
        let b = numeric_bytes(1, 0, 3, &[1, 2345, 6780]);
        assert_eq!(PgNumeric::parse(&b).unwrap().mantissa_i128(2), None);
        assert_eq!(
            PgNumeric::parse(&b).unwrap().mantissa_i128(3),
            Some(12_345_678)
        );
        // -0.05 at scale 2, as in TPC-H's discounts.
        let b = numeric_bytes(-1, NUMERIC_NEG, 2, &[500]);
        assert_eq!(PgNumeric::parse(&b).unwrap().mantissa_i128(2), Some(-5));
    }
}
