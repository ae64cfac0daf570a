//! A decimal `avg` a source can compute in parts: `sum` and `count` in the source, the
//! quotient in DataFusion by DataFusion's own rule.
//!
//! DataFusion finishes a decimal average by scaling the sum up to the result's scale and
//! dividing by the count, truncating ([`DecimalAverager`]); a SQL source rounds, or keeps
//! more places. So `avg(x)` is never sent as such. Where everything else in the aggregate
//! can run in the source, it becomes `sum(x)` and `count(x)` there, and
//! [`DecimalAvg`] computes the average from them exactly as `avg` would have.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::common::{exec_err, Column, Result};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Projection, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_functions_aggregate_common::utils::DecimalAverager;

/// `avg` of a decimal finished from its `sum` (of the argument's scale) and `count`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct DecimalAvg {
    signature: Signature,
    sum_scale: i8,
    precision: u8,
    scale: i8,
}

impl DecimalAvg {
    fn new(sum_scale: i8, precision: u8, scale: i8) -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            sum_scale,
            precision,
            scale,
        }
    }
}

impl ScalarUDFImpl for DecimalAvg {
    fn name(&self) -> &str {
        "weft_decimal_avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [sums, counts] = args.args.as_slice() else {
            return exec_err!("weft_decimal_avg takes a sum and a count");
        };
        let sums = sums.to_array(rows)?;
        let counts = counts.to_array(rows)?;
        let (Some(sums), Some(counts)) = (
            sums.as_primitive_opt::<Decimal128Type>(),
            counts.as_primitive_opt::<Int64Type>(),
        ) else {
            return exec_err!(
                "weft_decimal_avg takes a decimal sum and an integer count, not {} and {}",
                sums.data_type(),
                counts.data_type()
            );
        };
        let averager =
            DecimalAverager::<Decimal128Type>::try_new(self.sum_scale, self.precision, self.scale)?;
        let mut out = Decimal128Builder::with_capacity(rows);
        for row in 0..rows {
            if sums.is_null(row) || counts.is_null(row) || counts.value(row) == 0 {
                out.append_null();
            } else {
                out.append_value(averager.avg(sums.value(row), i128::from(counts.value(row)))?);
            }
        }
        let out: ArrayRef = Arc::new(
            out.finish()
                .with_precision_and_scale(self.precision, self.scale)?,
        );
        Ok(ColumnarValue::Array(out))
    }
}

/// `aggregate` with each plain `avg` of a Decimal128 replaced by `sum` and `count`, and the
/// projection that finishes the averages over it, giving the aggregate's own schema.
/// `None` when the aggregate has no such `avg`.
pub(crate) fn split_decimal_avg(aggregate: &Aggregate) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
    let input_schema = aggregate.input.schema();
    let mut aggr_expr = Vec::new();
    let mut finish = Vec::new();
    let group_columns = aggregate.group_expr.len();
    for column in aggregate.schema.columns().into_iter().take(group_columns) {
        finish.push(Expr::Column(column));
    }
    let outputs = aggregate.schema.columns().into_iter().skip(group_columns);
    for (i, (expr, output)) in aggregate.aggr_expr.iter().zip(outputs).enumerate() {
        let (inner, alias) = match expr {
            Expr::Alias(a) => (a.expr.as_ref(), Some(a.name.clone())),
            e => (e, None),
        };
        let plain_decimal_avg = match inner {
            Expr::AggregateFunction(AggregateFunction { func, params })
                if func.name() == "avg"
                    && !params.distinct
                    && params.filter.is_none()
                    && params.order_by.is_empty()
                    && params.args.len() == 1 =>
            {
                match (
                    params.args[0].get_type(input_schema)?,
                    expr.get_type(input_schema)?,
                ) {
                    (DataType::Decimal128(_, s), DataType::Decimal128(p, t)) => {
                        Some((params.args[0].clone(), s, p, t))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((arg, sum_scale, precision, scale)) = plain_decimal_avg else {
            aggr_expr.push(expr.clone());
            finish.push(Expr::Column(output));
            continue;
        };
        let (sum_name, count_name) = (
            format!("__weft_avg_sum_{i}"),
            format!("__weft_avg_count_{i}"),
        );
        aggr_expr.push(sum(arg.clone()).alias(&sum_name));
        aggr_expr.push(count(arg).alias(&count_name));
        let udf = ScalarUDF::new_from_impl(DecimalAvg::new(sum_scale, precision, scale));
        let avg = udf.call(vec![
            Expr::Column(Column::from_name(sum_name)),
            Expr::Column(Column::from_name(count_name)),
        ]);
        let name = alias.unwrap_or_else(|| output.name.clone());
        finish.push(avg.alias_qualified(output.relation.clone(), name));
    }
    if aggr_expr.len() == aggregate.aggr_expr.len() {
        return Ok(None);
    }
    let parts = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::clone(&aggregate.input),
        aggregate.group_expr.clone(),
        aggr_expr,
    )?);
    Ok(Some((parts, finish)))
}

/// The projection over the split aggregate (`parts`, once cut out for its source).
pub(crate) fn finish_decimal_avg(parts: LogicalPlan, finish: Vec<Expr>) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Projection(Projection::try_new(
        finish,
        Arc::new(parts),
    )?))
}
