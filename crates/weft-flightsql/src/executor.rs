//! A connection to a Flight SQL server, and the datafusion-federation `SQLExecutor` that runs
//! a remote sub-plan there as one SQL statement and streams the answer back as Arrow.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, Ticket};
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::{DefaultDialect, Dialect};
use datafusion_federation::sql::SQLExecutor;
use futures::{StreamExt as _, TryStreamExt as _};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How Weft logs in to the remote server.
#[derive(Clone)]
pub enum Credentials {
    /// No credentials.
    None,
    /// A Bearer token sent with every call.
    Bearer(String),
    /// A user and password exchanged for a Bearer token by the Handshake RPC (and again when
    /// that token expires).
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f.write_str("Bearer(..)"),
            Self::Basic { user, .. } => write!(f, "Basic({user}, ..)"),
        }
    }
}

/// A logged-in connection to one Flight SQL server; cheap to clone.
#[derive(Debug, Clone)]
pub struct FlightSqlConnection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    channel: Channel,
    credentials: Credentials,
    /// The Bearer token calls carry: configured, or from the last handshake.
    token: Mutex<Option<String>>,
}

impl FlightSqlConnection {
    /// Connects to `url` (`grpc://host:port`, or `grpc+tls://host:port` checked against the
    /// system's root certificates) and logs in.
    pub async fn connect(url: &str, credentials: Credentials) -> Result<Self, String> {
        let (http_url, tls) = if let Some(rest) = url.strip_prefix("grpc://") {
            (format!("http://{rest}"), false)
        } else if let Some(rest) = url.strip_prefix("grpc+tls://") {
            (format!("https://{rest}"), true)
        } else {
            return Err(format!(
                "url `{url}` must start with `grpc://` or `grpc+tls://`"
            ));
        };
        let mut endpoint = Endpoint::from_shared(http_url)
            .map_err(|e| format!("url `{url}` is invalid: {e}"))?
            .tcp_nodelay(true);
        if tls {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| format!("TLS for {url}: {e}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {url}: {}", source_chain(&e)))?;
        let token = match &credentials {
            Credentials::Bearer(token) => Some(token.clone()),
            _ => None,
        };
        let connection = Self {
            inner: Arc::new(Inner {
                url: url.to_string(),
                channel,
                credentials,
                token: Mutex::new(token),
            }),
        };
        connection.login().await?;
        Ok(connection)
    }

    /// Exchanges the user and password for a token, when the credentials are Basic.
    async fn login(&self) -> Result<(), String> {
        if let Credentials::Basic { user, password } = &self.inner.credentials {
            let mut client = FlightSqlServiceClient::new(self.inner.channel.clone());
            client.handshake(user, password).await.map_err(|e| {
                format!(
                    "logging in to {} as `{user}`: {}",
                    self.inner.url,
                    describe(&e)
                )
            })?;
            *self.inner.token.lock().unwrap_or_else(|e| e.into_inner()) = client.token().cloned();
        }
        Ok(())
    }

    /// A client carrying the current token.
    pub(crate) async fn client(&self) -> Result<FlightSqlServiceClient<Channel>, String> {
        let mut client = FlightSqlServiceClient::new(self.inner.channel.clone());
        let token = self
            .inner
            .token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(token) = token {
            client.set_token(token);
        }
        Ok(client)
    }

    /// Identifies the server and the credentials: tables reached with other credentials are
    /// never merged into one remote query.
    pub fn compute_context(&self) -> String {
        match &self.inner.credentials {
            Credentials::None => format!("flightsql:{}", self.inner.url),
            Credentials::Basic { user, .. } => format!("flightsql:{}#user={user}", self.inner.url),
            Credentials::Bearer(token) => {
                let mut hasher = DefaultHasher::new();
                token.hash(&mut hasher);
                format!(
                    "flightsql:{}#token={:016x}",
                    self.inner.url,
                    hasher.finish()
                )
            }
        }
    }

    /// Plans `sql` on the server; logs in again once if the session token has expired.
    async fn plan(&self, sql: &str) -> Result<FlightInfo, String> {
        let mut client = self.client().await?;
        match client.execute(sql.to_string(), None).await {
            Err(FlightError::Tonic(status))
                if status.code() == tonic::Code::Unauthenticated
                    && matches!(self.inner.credentials, Credentials::Basic { .. }) =>
            {
                self.login().await?;
                let mut client = self.client().await?;
                client
                    .execute(sql.to_string(), None)
                    .await
                    .map_err(|e| describe(&e))
            }
            other => other.map_err(|e| describe(&e)),
        }
    }

    /// Runs `sql` and streams its batches, endpoint after endpoint.
    async fn run(
        self,
        sql: String,
    ) -> Result<impl futures::Stream<Item = Result<RecordBatch, String>>, String> {
        let info = self.plan(&sql).await?;
        let tickets: Vec<Ticket> = info
            .endpoint
            .into_iter()
            .map(|e| {
                e.ticket
                    .ok_or_else(|| "the server answered with an endpoint without a ticket".into())
            })
            .collect::<Result<_, String>>()?;
        let connection = self.clone();
        Ok(futures::stream::iter(tickets)
            .then(move |ticket| {
                let connection = connection.clone();
                async move {
                    let mut client = connection.client().await?;
                    let stream = client.do_get(ticket).await.map_err(|e| describe(&e))?;
                    Ok::<_, String>(stream.map_err(|e| describe(&e)))
                }
            })
            .try_flatten())
    }
}

/// A Flight error as one line: the server's message and the status code.
pub(crate) fn describe(error: &FlightError) -> String {
    match error {
        FlightError::Tonic(status) => {
            let message = status.message();
            let code = status.code();
            if code == tonic::Code::Unavailable {
                format!("server unavailable: {message}")
            } else if message.is_empty() {
                code.description().to_string()
            } else {
                format!("{message} ({})", code.description())
            }
        }
        other => other.to_string(),
    }
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Gives a batch the schema the plan expects: the server may answer with other (equivalent)
/// types, such as `Utf8` for `Utf8View`. A value the expected type cannot hold is an error.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    weft_core::cast_columns(batch.columns().to_vec(), schema)
}

#[async_trait]
impl SQLExecutor for FlightSqlConnection {
    fn name(&self) -> &str {
        &self.inner.url
    }

    fn compute_context(&self) -> Option<String> {
        Some(FlightSqlConnection::compute_context(self))
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        Arc::new(DefaultDialect {})
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream> {
        let connection = self.clone();
        let sql = query.to_string();
        let expected = Arc::clone(&schema);
        let stream = futures::stream::once(connection.run(sql))
            .try_flatten()
            .map_err(DataFusionError::Execution)
            .and_then(move |batch| {
                let expected = Arc::clone(&expected);
                async move { conform(batch, &expected) }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        Err(DataFusionError::NotImplemented(
            "Weft discovers a Flight SQL server's tables with GetTables".into(),
        ))
    }

    async fn get_table_schema(&self, table_name: &str) -> Result<SchemaRef> {
        Err(DataFusionError::NotImplemented(format!(
            "Weft discovers the schema of `{table_name}` with GetTables"
        )))
    }
}
