//! What the server tells clients about itself: GetSqlInfo (the facts the ADBC and JDBC
//! drivers ask for) and GetXdbcTypeInfo (the SQL types DataFusion reads and returns).

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction, XdbcDataType, XdbcDatetimeSubcode,
};

/// The answers to GetSqlInfo.
pub(crate) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Weft");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow IPC format version (Schema.fbs MetadataVersion V5).
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    // DataFusion folds unquoted identifiers to lower case and keeps quoted ones as written.
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // Ascending order puts NULLs last: they sort as if larger than every value.
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    let keywords: &[&str] = &[
        "EXPLAIN", "ILIKE", "LIMIT", "OFFSET", "QUALIFY", "SIMILAR", "UNNEST", "WINDOW",
    ];
    b.append(SqlInfo::SqlKeywords, keywords);
    let numeric: &[&str] = &[
        "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "degrees", "exp", "floor",
        "ln", "log", "log10", "log2", "pi", "power", "radians", "random", "round", "signum", "sin",
        "sqrt", "tan", "trunc",
    ];
    b.append(SqlInfo::SqlNumericFunctions, numeric);
    let string: &[&str] = &[
        "ascii",
        "btrim",
        "char_length",
        "character_length",
        "chr",
        "concat",
        "concat_ws",
        "initcap",
        "left",
        "length",
        "lower",
        "lpad",
        "ltrim",
        "octet_length",
        "repeat",
        "replace",
        "reverse",
        "right",
        "rpad",
        "rtrim",
        "split_part",
        "starts_with",
        "strpos",
        "substr",
        "substring",
        "translate",
        "trim",
        "upper",
    ];
    b.append(SqlInfo::SqlStringFunctions, string);
    let system: &[&str] = &["arrow_typeof", "version"];
    b.append(SqlInfo::SqlSystemFunctions, system);
    let datetime: &[&str] = &[
        "current_date",
        "current_time",
        "current_timestamp",
        "date_bin",
        "date_part",
        "date_trunc",
        "extract",
        "from_unixtime",
        "now",
        "to_date",
        "to_timestamp",
    ];
    b.append(SqlInfo::SqlDatetimeFunctions, datetime);
    b.build()
        .expect("the server's SqlInfo table is well-formed")
});

fn xdbc(
    type_name: &str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    prefix: Option<&str>,
    subcode: Option<XdbcDatetimeSubcode>,
) -> XdbcTypeInfo {
    let numeric = matches!(
        data_type,
        XdbcDataType::XdbcTinyint
            | XdbcDataType::XdbcSmallint
            | XdbcDataType::XdbcInteger
            | XdbcDataType::XdbcBigint
            | XdbcDataType::XdbcFloat
            | XdbcDataType::XdbcReal
            | XdbcDataType::XdbcDouble
            | XdbcDataType::XdbcDecimal
    );
    let text = matches!(data_type, XdbcDataType::XdbcVarchar);
    XdbcTypeInfo {
        type_name: type_name.into(),
        data_type,
        column_size,
        literal_prefix: prefix.map(Into::into),
        literal_suffix: prefix.map(|_| "'".into()),
        create_params: (data_type == XdbcDataType::XdbcDecimal)
            .then(|| vec!["precision".into(), "scale".into()]),
        nullable: Nullable::NullabilityNullable,
        case_sensitive: text,
        searchable: if text {
            Searchable::Full
        } else {
            Searchable::Basic
        },
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: data_type == XdbcDataType::XdbcDecimal,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(type_name.into()),
        minimum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(0),
        maximum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(38),
        sql_data_type: if subcode.is_some() {
            XdbcDataType::XdbcDatetime
        } else {
            data_type
        },
        datetime_subcode: subcode,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The answers to GetXdbcTypeInfo: the SQL types of DataFusion's dialect.
pub(crate) static XDBC_TYPES: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
    use XdbcDataType as T;
    let mut b = XdbcTypeInfoDataBuilder::new();
    let types = [
        xdbc("BOOLEAN", T::XdbcBit, Some(1), None, None),
        xdbc("TINYINT", T::XdbcTinyint, Some(3), None, None),
        xdbc("SMALLINT", T::XdbcSmallint, Some(5), None, None),
        xdbc("INTEGER", T::XdbcInteger, Some(10), None, None),
        xdbc("BIGINT", T::XdbcBigint, Some(19), None, None),
        xdbc("REAL", T::XdbcReal, Some(24), None, None),
        xdbc("DOUBLE", T::XdbcDouble, Some(53), None, None),
        xdbc("DECIMAL", T::XdbcDecimal, Some(38), None, None),
        xdbc("VARCHAR", T::XdbcVarchar, None, Some("'"), None),
        xdbc("BYTEA", T::XdbcVarbinary, None, None, None),
        xdbc(
            "DATE",
            T::XdbcDate,
            Some(10),
            Some("DATE '"),
            Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
        ),
        xdbc(
            "TIME",
            T::XdbcTime,
            Some(15),
            Some("TIME '"),
            Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
        ),
        xdbc(
            "TIMESTAMP",
            T::XdbcTimestamp,
            Some(26),
            Some("TIMESTAMP '"),
            Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
        ),
    ];
    for t in types {
        b.append(t);
    }
    b.build()
        .expect("the server's XDBC type table is well-formed")
});
