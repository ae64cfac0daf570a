//! The Flight SQL service: datafusion-flight-sql-server's service for what it does well
//! (catalogs, table types, binding parameters to prepared statements), and Weft's own code
//! where standard clients need more: the Handshake login, GetSqlInfo and GetXdbcTypeInfo,
//! schemas and tables of every catalog, `?` parameters, read-only checks, results sent with
//! compact string arrays, and a log line per query.

use std::collections::BTreeSet;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    self, ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt as _, SqlInfo,
};
use arrow_flight::{
    Action, ActionType, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionContext, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion_flight_sql_server::service::FlightSqlService as DataFusionFlightSqlService;
use datafusion_flight_sql_server::session::SessionStateProvider;
use datafusion_flight_sql_server::state::{CommandTicket, QueryHandle};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use prost::bytes::Bytes;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use super::auth::{Authenticator, Principal};
use super::cancel::{self, Registration, Running};
use super::execution::{Executor, Task};
use super::http::{Metrics, Outcome};
use super::limits::{Admission, Deadline, Limits, Refused};
use super::metadata::{SQL_INFO, XDBC_TYPES};
use super::params::number_placeholders;
use super::sessions::Sessions;
use super::wire::{to_wire, wire_schema};

type DoGetStream = <WeftFlightSqlService as FlightService>::DoGetStream;

/// Hands datafusion-flight-sql-server the caller's federated session for each call.
struct WeftSessions {
    sessions: Arc<Sessions>,
}

#[async_trait::async_trait]
impl SessionStateProvider for WeftSessions {
    async fn new_context(&self, request: &Request<()>) -> Result<SessionState, Status> {
        Ok(self.sessions.for_request(request).await?.state())
    }
}

/// What clients may run: queries only.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Weft's Flight SQL service.
pub(crate) struct WeftFlightSqlService {
    inner: DataFusionFlightSqlService,
    sessions: Arc<Sessions>,
    auth: Authenticator,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    executor: Arc<Executor>,
    running: Arc<Running>,
}

impl WeftFlightSqlService {
    pub(crate) fn new(
        sessions: Arc<Sessions>,
        auth: Authenticator,
        limits: Arc<Limits>,
        metrics: Arc<Metrics>,
        executor: Arc<Executor>,
    ) -> Self {
        let inner = DataFusionFlightSqlService::new_with_provider(Box::new(WeftSessions {
            sessions: Arc::clone(&sessions),
        }))
        .with_sql_options(read_only());
        Self {
            inner,
            sessions,
            auth,
            limits,
            metrics,
            executor,
            running: Arc::default(),
        }
    }

    /// Plans a client's statement in its session: `?` parameters numbered, and refused
    /// unless it is a query.
    async fn plan(&self, session: &SessionContext, sql: &str) -> Result<LogicalPlan, Status> {
        let sql = number_placeholders(sql).map_err(Status::invalid_argument)?;
        let plan = session
            .state()
            .create_logical_plan(&sql)
            .await
            .map_err(|e| df_status(&e))?;
        read_only().verify_plan(&plan).map_err(|e| {
            Status::permission_denied(format!(
                "{}: Weft serves queries only (no DDL, DML, COPY or SET)",
                message(&e)
            ))
        })?;
        #[cfg(feature = "semantic")]
        if matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_))
            && weft_semantic::TenantScope::of(&session.state()).is_some()
        {
            return Err(Status::permission_denied(
                "EXPLAIN is for operators: its plan shows the storage tables under the model",
            ));
        }
        Ok(plan)
    }

    /// A query refused when planned (a mistake in it, no such table) counts as failed.
    fn counted<T>(&self, planned: Result<T>) -> Result<T> {
        if planned.is_err() {
            self.metrics.query_ended(Outcome::failed, 0.0, 0);
        }
        planned
    }

    /// Runs a query ticket: waits for a slot, plans, and starts the plan on the query threads
    /// with the query's own memory pool; the result streams until the deadline or a cancel.
    async fn start_query(
        &self,
        request: Request<Ticket>,
        started: Instant,
        deadline: Option<Deadline>,
    ) -> Result<Response<DoGetStream>, Failed> {
        let user = principal(&request);
        let session = self.sessions.for_request(&request).await?;
        let ticket = request.into_inner().ticket;
        let id = cancel::id_of(&ticket);
        let (sql, parameters) = read_ticket(ticket)?;
        let mut registration = id.map(|id| self.running.start(id, &user)).transpose()?;
        let admission = self.limits.admit(deadline.as_ref()).await?;
        let mut plan = self.plan(&session, &sql).await?;
        let schema = wire_schema(plan.schema().as_arrow());
        if let Some(parameters) = parameters {
            plan = plan
                .with_param_values(parameters)
                .map_err(|e| df_status(&e))?;
        }
        let sources = sources_of(&plan);
        let query = self.limits.for_query(&session).map_err(|e| df_status(&e))?;
        let span = tracing::info_span!(
            "query",
            user = %user,
            id = %id.map_or_else(|| "-".to_string(), |id| hex(&id[..4])),
        );

        // The plan runs on the query threads, holding the query's slot until it is over; its
        // batches come back through a channel.
        let (ready, is_ready) = oneshot::channel();
        let (results, batches) = mpsc::channel(2);
        let task = self
            .executor
            .spawn(run_plan(query, plan, admission, ready, results).instrument(span.clone()));
        let stop = Stop {
            deadline: deadline
                .map(|Deadline { at, why }| (Box::pin(tokio::time::sleep_until(at)), why)),
            cancelled: registration.as_mut().and_then(|r| r.cancelled.take()),
        };
        let mut logged = Logged {
            batches: Some(batches),
            task,
            schema: Arc::clone(&schema),
            user,
            sql,
            sources,
            started,
            rows: 0,
            outcome: None,
            stop,
            stopped: None,
            metrics: Arc::clone(&self.metrics),
            span,
            _registration: registration,
        };
        // Errors in starting the plan are the DoGet's own status.
        let started = tokio::select! {
            started = is_ready => started.unwrap_or_else(|_| Err(DataFusionError::Execution(
                "the query stopped before it started (see the server's log)".to_string(),
            ))),
            (status, outcome) = std::future::poll_fn(|cx| logged.stop.poll(cx)) => {
                logged.outcome = Some(Err(status.message().to_string()));
                logged.stopped = Some(outcome);
                return Err(Failed { status, outcome: None });
            }
        };
        if let Err(e) = started {
            logged.outcome = Some(Err(e.to_string()));
            return Err(Failed {
                status: df_status(&e),
                outcome: None,
            });
        }
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(logged)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }
}

/// The SQL a query ticket carries, with its bound parameters if it is a prepared statement's.
fn read_ticket(ticket: Bytes) -> Result<(String, Option<ParamValues>), Status> {
    let ticket = CommandTicket::try_decode(ticket)
        .map_err(|e| Status::invalid_argument(format!("unreadable ticket: {e}")))?;
    match ticket.command {
        sql::Command::CommandStatementQuery(CommandStatementQuery { query, .. }) => {
            Ok((query, None))
        }
        sql::Command::CommandPreparedStatementQuery(CommandPreparedStatementQuery {
            prepared_statement_handle,
        }) => {
            let handle = QueryHandle::try_decode(prepared_statement_handle)
                .map_err(|e| Status::invalid_argument(format!("unreadable handle: {e}")))?;
            let parameters = handle.parameters().map(param_values).transpose()?;
            Ok((handle.query().to_string(), parameters))
        }
        other => Err(Status::invalid_argument(format!(
            "this ticket cannot be read: {}",
            other.type_url()
        ))),
    }
}

/// Runs a query's plan on the query threads, holding its slot (`admission`) until it is over:
/// says on `ready` whether it started, then sends its batches on `results`.
async fn run_plan(
    query: SessionContext,
    plan: LogicalPlan,
    admission: Admission,
    ready: oneshot::Sender<Result<(), DataFusionError>>,
    results: mpsc::Sender<Result<Piece, DataFusionError>>,
) {
    let _admission = admission;
    let start = async {
        query
            .execute_logical_plan(plan)
            .await?
            .execute_stream()
            .await
    };
    let mut stream = match start.await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    // One batch is held back until the next one or the end is known, so the last batch goes
    // out marked as such: the client has the end of the result with its last rows, and one
    // that stops reading then (a LIMIT) is not "cancelled".
    let mut held: Option<RecordBatch> = None;
    loop {
        let piece = match stream.next().await {
            Some(Ok(batch)) => match held.replace(batch) {
                Some(previous) => Ok(Piece::Batch(previous)),
                None => continue,
            },
            Some(Err(e)) => Err(e),
            None => Ok(Piece::Last(held.take())),
        };
        let more = matches!(piece, Ok(Piece::Batch(_)));
        if results.send(piece).await.is_err() || !more {
            return;
        }
    }
}

/// A DoGet that ended before its result began to stream, and how the metrics count it
/// (`None`: counted when its query was dropped).
struct Failed {
    status: Status,
    outcome: Option<Outcome>,
}

impl From<Status> for Failed {
    fn from(status: Status) -> Self {
        let outcome = match status.code() {
            tonic::Code::DeadlineExceeded => Outcome::timeout,
            tonic::Code::Cancelled => Outcome::cancelled,
            _ => Outcome::failed,
        };
        Self {
            status,
            outcome: Some(outcome),
        }
    }
}

impl From<Refused> for Failed {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Busy(status) => Self {
                status,
                outcome: Some(Outcome::busy),
            },
            other => Status::from(other).into(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A DataFusion error as a status: the client's mistakes are INVALID_ARGUMENT.
fn df_status(error: &DataFusionError) -> Status {
    let text = message(error);
    match error.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => Status::invalid_argument(text),
        DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(text),
        _ => Status::internal(text),
    }
}

fn message(error: &DataFusionError) -> String {
    error.to_string()
}

fn encode_schema(schema: &Schema) -> Result<Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

fn flight_info(
    schema: &Schema,
    ticket: Bytes,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket { ticket }))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

fn one_batch(schema: SchemaRef, batch: Result<RecordBatch, Status>) -> Response<DoGetStream> {
    let batch = batch.map_err(FlightError::from);
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { batch }))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn principal<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Principal>()
        .map_or_else(|| "?".to_string(), |p| p.name.clone())
}

/// Reads the single row of bound parameters a prepared statement handle carries.
fn param_values(parameters: &[u8]) -> Result<ParamValues, Status> {
    let invalid = |e: &dyn std::fmt::Display| {
        Status::invalid_argument(format!("the bound parameters are unreadable: {e}"))
    };
    let reader = StreamReader::try_new(parameters, None).map_err(|e| invalid(&e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let batch =
        datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| invalid(&e))?;
    if batch.num_rows() != 1 {
        return Err(Status::invalid_argument(format!(
            "bind exactly one row of parameters (got {})",
            batch.num_rows()
        )));
    }
    let mut values = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let value = ScalarValue::try_from_array(batch.column(i), 0).map_err(|e| invalid(&e))?;
        let position = field.name().trim_start_matches('$').parse::<usize>().ok();
        values.push((position, value));
    }
    // Columns named `$1, $2, ...` bind by their number; otherwise they bind in order.
    if values.iter().all(|(position, _)| position.is_some()) {
        values.sort_by_key(|(position, _)| *position);
    }
    Ok(ParamValues::List(
        values.into_iter().map(|(_, v)| v.into()).collect(),
    ))
}

/// The sources (catalogs) a plan reads from, for the log.
fn sources_of(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut sources = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(catalog) = scan.table_name.catalog() {
                sources.insert(catalog.to_string());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    sources
}

/// What ends a query before its result does: its deadline, or the client's cancel.
struct Stop {
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, String)>,
    cancelled: Option<Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
}

impl Stop {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<(Status, Outcome)> {
        if let Some((sleep, why)) = self.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready((Status::deadline_exceeded(why.clone()), Outcome::timeout));
            }
        }
        if let Some(cancelled) = self.cancelled.as_mut() {
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready((
                    Status::cancelled("the client cancelled the query (CancelFlightInfo)"),
                    Outcome::cancelled,
                ));
            }
        }
        Poll::Pending
    }
}

/// What the query's task sends: a batch, or the last one (if any) with the end.
enum Piece {
    Batch(RecordBatch),
    Last(Option<RecordBatch>),
}

/// A query's result on its way to the client: counts rows, ends the query at its deadline or
/// cancel, and logs one line when it ends or is dropped. Dropping it (the client cancelled or
/// went away) aborts the query's task, whose plan cancels what it started in the sources.
struct Logged {
    /// The plan's batches; `None` once the query was stopped. A channel that closes before
    /// the last piece means the task died (a panic): never a complete result.
    batches: Option<mpsc::Receiver<Result<Piece, DataFusionError>>>,
    task: Task,
    schema: SchemaRef,
    user: String,
    sql: String,
    sources: BTreeSet<String>,
    started: Instant,
    rows: u64,
    outcome: Option<Result<(), String>>,
    stop: Stop,
    /// Why it ended early: its deadline or a cancel.
    stopped: Option<Outcome>,
    metrics: Arc<Metrics>,
    span: tracing::Span,
    _registration: Option<Registration>,
}

impl Stream for Logged {
    type Item = Result<RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.outcome.is_some() {
            return Poll::Ready(None);
        }
        if let Poll::Ready((status, outcome)) = self.stop.poll(cx) {
            self.outcome = Some(Err(status.message().to_string()));
            self.stopped = Some(outcome);
            // Stops the plan now: its remote statements are cancelled.
            self.batches = None;
            self.task.abort();
            return Poll::Ready(Some(Err(FlightError::Tonic(Box::new(status)))));
        }
        let Some(batches) = self.batches.as_mut() else {
            return Poll::Ready(None);
        };
        let batch = match batches.poll_recv(cx) {
            Poll::Ready(Some(Ok(Piece::Batch(batch)))) => batch,
            Poll::Ready(Some(Ok(Piece::Last(last)))) => {
                self.outcome = Some(Ok(()));
                match last {
                    Some(batch) => batch,
                    None => return Poll::Ready(None),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.outcome = Some(Err(e.to_string()));
                return Poll::Ready(Some(Err(FlightError::Tonic(Box::new(df_status(&e))))));
            }
            Poll::Ready(None) => {
                let message = "the query stopped before its end (see the server's log)";
                self.outcome = Some(Err(message.to_string()));
                return Poll::Ready(Some(Err(FlightError::Tonic(Box::new(Status::internal(
                    message,
                ))))));
            }
            Poll::Pending => return Poll::Pending,
        };
        self.rows += batch.num_rows() as u64;
        let schema = Arc::clone(&self.schema);
        Poll::Ready(Some(
            to_wire(batch, &schema).map_err(|e| FlightError::ExternalError(e.into())),
        ))
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.task.abort();
        let _span = self.span.enter();
        let sources = self.sources.iter().cloned().collect::<Vec<_>>().join(",");
        let seconds = self.started.elapsed().as_secs_f64();
        let outcome = match &self.outcome {
            Some(Ok(())) => Outcome::ok,
            Some(Err(_)) => self.stopped.unwrap_or(Outcome::failed),
            None => Outcome::cancelled,
        };
        self.metrics.query_ended(outcome, seconds, self.rows);
        match &self.outcome {
            Some(Ok(())) => tracing::info!(
                user = %self.user, rows = self.rows, seconds, sources = %sources, sql = %self.sql,
                "query done"
            ),
            Some(Err(error)) if outcome != Outcome::cancelled => tracing::warn!(
                user = %self.user, rows = self.rows, seconds, sources = %sources, sql = %self.sql,
                error = %error, "query failed"
            ),
            _ => tracing::info!(
                user = %self.user, rows = self.rows, seconds, sources = %sources, sql = %self.sql,
                "query cancelled by the client"
            ),
        }
    }
}

#[tonic::async_trait]
impl FlightSqlService for WeftFlightSqlService {
    type FlightService = WeftFlightSqlService;

    /// Basic credentials (checked by the interceptor) are answered with a login token in the
    /// `authorization` header and in the payload.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>>
    {
        let principal = request
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("log in with a user and password"))?;
        let token = self.auth.issue_token(&principal);
        tracing::info!(user = %principal.name, "logged in");
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::from(token.clone()),
        };
        let mut response = Response::new(Box::pin(futures::stream::iter([Ok(response)]))
            as Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>);
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("the token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        _message: Any,
    ) -> Result<Response<DoGetStream>> {
        let started = Instant::now();
        let deadline = self.limits.deadline(request.metadata());
        self.start_query(request, started, deadline)
            .await
            .map_err(|Failed { status, outcome }| {
                if let Some(outcome) = outcome {
                    self.metrics
                        .query_ended(outcome, started.elapsed().as_secs_f64(), 0);
                }
                status
            })
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        let session = self.sessions.for_request(&request).await?;
        let plan = self.counted(self.plan(&session, &query.query).await)?;
        let schema = wire_schema(plan.schema().as_arrow());
        let ticket = CommandTicket::new(sql::Command::CommandStatementQuery(query))
            .try_encode()
            .map_err(|e| Status::internal(e.to_string()))?;
        let ticket = cancel::with_new_id(&ticket)?;
        flight_info(&schema, ticket, request.into_inner())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        let handle = QueryHandle::try_decode(cmd.prepared_statement_handle.clone())
            .map_err(|e| Status::invalid_argument(format!("unreadable handle: {e}")))?;
        let session = self.sessions.for_request(&request).await?;
        let plan = self.counted(self.plan(&session, handle.query()).await)?;
        let schema = wire_schema(plan.schema().as_arrow());
        let ticket = CommandTicket::new(sql::Command::CommandPreparedStatementQuery(cmd))
            .try_encode()
            .map_err(|e| Status::internal(e.to_string()))?;
        let ticket = cancel::with_new_id(&ticket)?;
        flight_info(&schema, ticket, request.into_inner())
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult> {
        let session = self.sessions.for_request(&request).await?;
        let sql = number_placeholders(&query.query).map_err(Status::invalid_argument)?;
        let plan = self.plan(&session, &sql).await?;
        let dataset_schema = wire_schema(plan.schema().as_arrow());
        let mut parameters = plan
            .get_parameter_types()
            .map_err(|e| df_status(&e))?
            .into_iter()
            .collect::<Vec<_>>();
        // `$1, $2, ..., $10` in numeric order.
        parameters.sort_by_key(|(name, _)| {
            name.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let fields = parameters
            .into_iter()
            .map(|(name, data_type)| Field::new(name, data_type.unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>();
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: QueryHandle::new(sql, None).into(),
            dataset_schema: encode_schema(&dataset_schema)?,
            parameter_schema: encode_schema(&Schema::new(fields))?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult> {
        self.inner
            .do_put_prepared_statement_query(query, request)
            .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<()> {
        self.inner
            .do_action_close_prepared_statement(query, request)
            .await
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64> {
        Err(refuse_update(&ticket.query))
    }

    async fn do_put_prepared_statement_update(
        &self,
        handle: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64> {
        let sql = QueryHandle::try_decode(handle.prepared_statement_handle)
            .map(|h| h.query().to_string())
            .unwrap_or_default();
        Err(refuse_update(&sql))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        self.inner.get_flight_info_catalogs(query, request).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>> {
        self.inner.do_get_catalogs(query, request).await
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        self.inner.get_flight_info_schemas(query, request).await
    }

    /// Every catalog's schemas when no catalog is given (the crate lists none then).
    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>> {
        let session = self.sessions.for_request(&request).await?;
        let mut builder = query.into_builder();
        for catalog_name in session.catalog_names() {
            if let Some(catalog) = session.catalog(&catalog_name) {
                for schema_name in catalog.schema_names() {
                    builder.append(&catalog_name, schema_name);
                }
            }
        }
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build().map_err(Status::from)))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        self.inner.get_flight_info_tables(query, request).await
    }

    /// Every catalog's tables when no catalog is given, with schemas as they are sent.
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>> {
        let session = self.sessions.for_request(&request).await?;
        let wanted = query.catalog.clone();
        let mut builder = query.into_builder();
        for catalog_name in session.catalog_names() {
            if wanted.as_ref().is_some_and(|w| w != &catalog_name) {
                continue;
            }
            let Some(catalog) = session.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    let table = schema.table(&table_name).await.map_err(|e| df_status(&e))?;
                    if let Some(table) = table {
                        builder
                            .append(
                                &catalog_name,
                                &schema_name,
                                &table_name,
                                table_type_name(table.table_type()),
                                &wire_schema(&table.schema()),
                            )
                            .map_err(Status::from)?;
                    }
                }
            }
        }
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build().map_err(Status::from)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        flight_info(
            &table_types_schema(),
            query.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    /// The JDBC names, which GetTables also uses: `TABLE` and `VIEW`.
    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>> {
        let schema = table_types_schema();
        let types: ArrayRef = Arc::new(StringArray::from(vec!["TABLE", "VIEW"]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![types])
            .map_err(|e| Status::internal(e.to_string()));
        Ok(one_batch(schema, batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>> {
        let builder = query.into_builder(&SQL_INFO);
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build().map_err(Status::from)))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>> {
        let schema = query.into_builder(&XDBC_TYPES).schema();
        flight_info(
            &schema,
            query.as_any().encode_to_vec().into(),
            request.into_inner(),
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>> {
        let builder = query.into_builder(&XDBC_TYPES);
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build().map_err(Status::from)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}

    /// The deprecated CancelQuery: as CancelFlightInfo.
    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult> {
        self.running.cancel_query(&query, &principal(&request))
    }

    /// CancelFlightInfo, the one action that is not Flight SQL's own.
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>> {
        if request.get_ref().r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::invalid_argument(format!(
                "unknown action `{}`",
                request.get_ref().r#type
            )));
        }
        let user = principal(&request);
        let body = self
            .running
            .cancel_flight_info(&request.get_ref().body, &user)?;
        let result = arrow_flight::Result { body };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(result)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(vec![Ok(ActionType {
            r#type: CANCEL_FLIGHT_INFO.to_string(),
            description: "Cancels a query: its running DoGet stops, a later one is refused.\n\
                 Request Message: CancelFlightInfoRequest\n\
                 Response Message: CancelFlightInfoResult"
                .to_string(),
        })])
    }
}

/// Flight's own action to cancel the query of a FlightInfo.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

fn table_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "table_type",
        DataType::Utf8,
        false,
    )]))
}

/// A table type as JDBC and ADBC clients name it.
fn table_type_name(table_type: TableType) -> &'static str {
    match table_type {
        TableType::View => "VIEW",
        TableType::Base | TableType::Temporary => "TABLE",
    }
}

fn refuse_update(sql: &str) -> Status {
    Status::permission_denied(format!(
        "Weft serves queries only: updates (DDL, DML, COPY, SET) are refused: {sql}"
    ))
}

type Result<T, E = Status> = std::result::Result<T, E>;
