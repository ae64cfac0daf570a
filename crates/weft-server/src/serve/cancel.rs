//! Cancelling a query by its FlightInfo (Flight SQL `CancelFlightInfo` and the older
//! `CancelQuery`).
//!
//! The server keeps no query state between calls, so the ticket of every FlightInfo it hands
//! out carries a random query id next to the command. A DoGet registers its id here while it
//! runs; a cancel request names the id (from the tickets of the FlightInfo it carries), which
//! stops the running DoGet and leaves a mark that refuses a DoGet of that ticket that comes
//! later. A cancel that reaches another instance of the server finds nothing to stop there:
//! it answers CANCELLED all the same (the query, if it runs elsewhere, goes on until its
//! client drops it).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_flight::sql::{ActionCancelQueryRequest, ActionCancelQueryResult};
use arrow_flight::{CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightInfo};
use prost::bytes::Bytes;
use prost::Message as _;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;

/// How long a cancel is remembered for a ticket that was not running when it came.
const REMEMBERED: Duration = Duration::from_secs(600);
/// At most this many such cancels are remembered (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 10_000;

/// A query's id in its ticket.
pub(crate) type QueryId = [u8; 16];

/// A ticket as Weft writes it: datafusion-flight-sql-server's ticket message (field 2, the
/// command) with the query id in field 15, which that crate's reader skips.
#[derive(Clone, PartialEq, prost::Message)]
struct TicketMessage {
    #[prost(bytes = "bytes", tag = "2")]
    command: Bytes,
    #[prost(bytes = "bytes", tag = "15")]
    query: Bytes,
}

/// `ticket` (as datafusion-flight-sql-server encodes a command) with a new random query id.
pub(crate) fn with_new_id(ticket: &Bytes) -> Result<Bytes, Status> {
    let mut message = TicketMessage::decode(ticket.clone())
        .map_err(|e| Status::internal(format!("cannot write the ticket: {e}")))?;
    let mut id = QueryId::default();
    getrandom::fill(&mut id).map_err(|e| {
        Status::internal(format!("the operating system's random source failed: {e}"))
    })?;
    message.query = Bytes::copy_from_slice(&id);
    Ok(message.encode_to_vec().into())
}

/// The query id a ticket carries, if it is one of Weft's.
pub(crate) fn id_of(ticket: &[u8]) -> Option<QueryId> {
    let message = TicketMessage::decode(ticket).ok()?;
    QueryId::try_from(message.query.as_ref()).ok()
}

/// The query ids of a FlightInfo's tickets.
fn ids_in(info: &FlightInfo) -> Vec<QueryId> {
    info.endpoint
        .iter()
        .filter_map(|endpoint| endpoint.ticket.as_ref())
        .filter_map(|ticket| id_of(&ticket.ticket))
        .collect()
}

enum Entry {
    Running {
        token: CancellationToken,
        streams: usize,
    },
    Cancelled {
        at: Instant,
    },
}

/// A query of one user: a ticket replayed by another user is another query.
type Key = (QueryId, String);

/// The queries running now, by id and user.
#[derive(Default)]
pub(crate) struct Running {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Running {
    /// Registers a DoGet of query `id` by `user`; refused if the query was cancelled before.
    pub(crate) fn start(self: &Arc<Self>, id: QueryId, user: &str) -> Result<Registration, Status> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (id, user.to_string());
        let token =
            match entries.get_mut(&key) {
                Some(Entry::Cancelled { .. }) => return Err(Status::cancelled(
                    "this query was cancelled (CancelFlightInfo) before its result was fetched; \
                     ask for a new FlightInfo to run it again",
                )),
                Some(Entry::Running { token, streams }) => {
                    *streams += 1;
                    token.clone()
                }
                None => {
                    let token = CancellationToken::new();
                    entries.insert(
                        key.clone(),
                        Entry::Running {
                            token: token.clone(),
                            streams: 1,
                        },
                    );
                    token
                }
            };
        Ok(Registration {
            running: Arc::clone(self),
            key,
            cancelled: Some(Box::pin(token.cancelled_owned())),
        })
    }

    /// Cancels every query a FlightInfo's tickets name, on behalf of `user`.
    fn cancel(&self, info: &FlightInfo, user: &str) -> Result<CancelStatus, Status> {
        let ids = ids_in(info);
        if ids.is_empty() {
            return Ok(CancelStatus::NotCancellable);
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|_, entry| match entry {
            Entry::Cancelled { at, .. } => now.duration_since(*at) < REMEMBERED,
            Entry::Running { .. } => true,
        });
        for id in ids {
            let key = (id, user.to_string());
            if let Some(Entry::Running { token, .. }) = entries.get(&key) {
                token.cancel();
                tracing::info!(user, "query cancelled by the client (CancelFlightInfo)");
            }
            entries.insert(key, Entry::Cancelled { at: now });
        }
        let remembered = entries
            .values()
            .filter(|e| matches!(e, Entry::Cancelled { .. }))
            .count();
        if remembered > MAX_REMEMBERED {
            let mut oldest = entries
                .iter()
                .filter_map(|(key, e)| match e {
                    Entry::Cancelled { at } => Some((*at, key.clone())),
                    Entry::Running { .. } => None,
                })
                .collect::<Vec<_>>();
            oldest.sort();
            for (_, key) in oldest.into_iter().take(remembered - MAX_REMEMBERED) {
                entries.remove(&key);
            }
        }
        Ok(CancelStatus::Cancelled)
    }

    /// Answers a `CancelFlightInfo` action's body.
    pub(crate) fn cancel_flight_info(&self, body: &[u8], user: &str) -> Result<Bytes, Status> {
        let request = CancelFlightInfoRequest::decode(body).map_err(|e| {
            Status::invalid_argument(format!("unreadable CancelFlightInfoRequest: {e}"))
        })?;
        let info = request.info.ok_or_else(|| {
            Status::invalid_argument("CancelFlightInfoRequest without a FlightInfo")
        })?;
        let status = self.cancel(&info, user)?;
        Ok(CancelFlightInfoResult::new(status).encode_to_vec().into())
    }

    /// Answers the deprecated `CancelQuery` action.
    pub(crate) fn cancel_query(
        &self,
        request: &ActionCancelQueryRequest,
        user: &str,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(request.info.clone())
            .map_err(|e| Status::invalid_argument(format!("unreadable FlightInfo: {e}")))?;
        // CancelQuery's result numbers its answers as CancelFlightInfo's status does.
        Ok(ActionCancelQueryResult {
            result: self.cancel(&info, user)?.into(),
        })
    }
}

/// A running DoGet's place in [`Running`], left when dropped.
pub(crate) struct Registration {
    running: Arc<Running>,
    key: Key,
    /// Ready when a client cancels the query.
    pub(crate) cancelled: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self
            .running
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Entry::Running { streams, .. }) = entries.get_mut(&self.key) {
            *streams -= 1;
            if *streams == 0 {
                entries.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::{FlightEndpoint, Ticket};
    use futures::FutureExt as _;

    fn info(ticket: Bytes) -> FlightInfo {
        FlightInfo::new().with_endpoint(FlightEndpoint::new().with_ticket(Ticket { ticket }))
    }

    fn ticket() -> Bytes {
        // What datafusion-flight-sql-server writes: field 2, the command.
        let command = TicketMessage {
            command: Bytes::from_static(b"command"),
            query: Bytes::new(),
        };
        with_new_id(&command.encode_to_vec().into()).unwrap()
    }

    #[test]
    fn a_new_id_keeps_the_command_and_differs_each_time() {
        let (a, b) = (ticket(), ticket());
        assert_ne!(id_of(&a), id_of(&b));
        assert_eq!(
            TicketMessage::decode(a).unwrap().command,
            Bytes::from_static(b"command")
        );
        assert_eq!(id_of(b"not a ticket"), None);
    }

    #[tokio::test]
    async fn cancel_stops_the_running_query_and_refuses_a_later_fetch() {
        let running = Arc::new(Running::default());
        let ticket = ticket();
        let id = id_of(&ticket).unwrap();
        let mut registration = running.start(id, "ana").unwrap();
        // Another user cannot cancel it.
        running.cancel(&info(ticket.clone()), "bo").unwrap();
        assert!(registration
            .cancelled
            .as_mut()
            .unwrap()
            .as_mut()
            .now_or_never()
            .is_none());
        assert_eq!(
            running.cancel(&info(ticket), "ana").unwrap(),
            CancelStatus::Cancelled
        );
        registration.cancelled.take().unwrap().await;
        drop(registration);
        let refused = running.start(id, "ana").err().unwrap();
        assert_eq!(refused.code(), tonic::Code::Cancelled);
        // The ticket replayed by another user is another query.
        drop(running.start(id, "carl").unwrap());
    }

    #[test]
    fn a_cancel_before_the_fetch_refuses_it_and_finished_queries_are_forgotten() {
        let running = Arc::new(Running::default());
        let (early, done) = (ticket(), ticket());
        let registration = running.start(id_of(&done).unwrap(), "ana").unwrap();
        drop(registration);
        assert!(running.entries.lock().unwrap().is_empty());
        running.cancel(&info(early.clone()), "ana").unwrap();
        assert!(running.start(id_of(&early).unwrap(), "ana").is_err());
        assert_eq!(
            running
                .cancel(&info(Bytes::from_static(b"x")), "ana")
                .unwrap(),
            CancelStatus::NotCancellable
        );
    }
}
