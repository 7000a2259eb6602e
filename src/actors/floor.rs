//! `Floor`: the handles of every queue and the ticket → queue index. It routes a ticket
//! command to the queue that owns the ticket and runs the two halves of a transfer.

use super::queue::{CommandError, CommitStream, Committed, Outcome, QueueHandle};
use crate::domain::command::{Command, Idempotency};
use crate::domain::config::Hospital;
use crate::domain::error::QueueError;
use crate::domain::ids::{QueueId, RoomId, TicketId};
use crate::domain::keypad::RoomAction;
use crate::domain::view::{QueueSnapshot, TicketView};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Which queue holds each live ticket. Written by queue actors as they issue, take in and drop
/// tickets; read by the edges to route. An index only: the queue actor stays the owner.
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<HashMap<TicketId, QueueId>>>);

impl Directory {
    pub fn insert(&self, t: TicketId, q: QueueId) {
        // A poisoned lock means a writer panicked mid-insert of a plain map entry; the map is still usable.
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(t, q);
    }
    pub fn remove_all<'a>(&self, tickets: impl Iterator<Item = &'a TicketId>, owner: &QueueId) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        for t in tickets {
            if m.get(t) == Some(owner) {
                m.remove(t);
            }
        }
    }
    pub fn get(&self, t: &TicketId) -> Option<QueueId> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(t).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("unknown ticket {0}")]
    UnknownTicket(TicketId),
    #[error("unknown room {0}")]
    UnknownRoom(RoomId),
    #[error("room {0} has no called patient")]
    NoCurrentPatient(RoomId),
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<QueueError> for FloorError {
    fn from(e: QueueError) -> Self {
        FloorError::Command(CommandError::Rejected(e))
    }
}

#[derive(Clone)]
pub struct Floor {
    pub hospital: Arc<Hospital>,
    queues: Arc<BTreeMap<QueueId, QueueHandle>>,
    directory: Directory,
    stream: CommitStream,
}

impl Floor {
    /// The floor of `queues`, which index their tickets in `directory` and publish on `stream`.
    pub fn new(hospital: Arc<Hospital>, queues: BTreeMap<QueueId, QueueHandle>, directory: Directory, stream: CommitStream) -> Self {
        Self { hospital, queues: Arc::new(queues), directory, stream }
    }

    /// Follow every queue's commits (see [`CommitStream`] for the order).
    pub fn committed(&self) -> tokio::sync::broadcast::Receiver<Arc<Committed>> {
        self.stream.subscribe()
    }

    /// Follow every queue's commits, with how many were published before the first received.
    pub fn committed_counted(&self) -> (tokio::sync::broadcast::Receiver<Arc<Committed>>, u64) {
        self.stream.subscribe_counted()
    }

    /// How many commits have been published (see [`CommitStream::published`]).
    pub fn published(&self) -> u64 {
        self.stream.published()
    }

    pub fn queue(&self, id: &QueueId) -> Result<&QueueHandle, FloorError> {
        self.queues.get(id).ok_or_else(|| FloorError::UnknownQueue(id.clone()))
    }

    pub fn queues(&self) -> impl Iterator<Item = &QueueHandle> {
        self.queues.values()
    }

    /// The queue that holds `ticket` now.
    pub fn owner(&self, ticket: &TicketId) -> Result<&QueueHandle, FloorError> {
        let q = self.directory.get(ticket).ok_or_else(|| FloorError::UnknownTicket(ticket.clone()))?;
        self.queue(&q)
    }

    pub async fn execute(&self, queue: &QueueId, cmd: Command, idem: Option<Idempotency>) -> Result<Outcome, FloorError> {
        Ok(self.queue(queue)?.execute(cmd, idem).await?)
    }

    /// Run a command on whichever queue holds the ticket, following a transfer that raced it.
    pub async fn on_ticket(&self, ticket: &TicketId, cmd: Command, idem: Option<Idempotency>) -> Result<Outcome, FloorError> {
        let mut q = self.owner(ticket)?.clone();
        for _ in 0..3 {
            match q.execute(cmd.clone(), idem.clone()).await {
                Err(CommandError::Rejected(QueueError::Transferred { to, .. })) => q = self.queue(&to)?.clone(),
                Err(CommandError::Rejected(QueueError::UnknownTicket(_))) => return Err(FloorError::UnknownTicket(ticket.clone())),
                other => return Ok(other?),
            }
        }
        Err(FloorError::UnknownTicket(ticket.clone()))
    }

    pub async fn ticket(&self, ticket: &TicketId) -> Result<TicketView, FloorError> {
        let mut q = self.owner(ticket)?.clone();
        for _ in 0..3 {
            let view = q.ticket(ticket.clone()).await?.ok_or_else(|| FloorError::UnknownTicket(ticket.clone()))?;
            match &view.transferred_to {
                Some(to) => q = self.queue(to)?.clone(),
                None => return Ok(view),
            }
        }
        Err(FloorError::UnknownTicket(ticket.clone()))
    }

    /// A patient's tickets of today, in every queue.
    pub async fn patient_tickets(&self, patient: &crate::domain::ids::PatientId) -> Result<Vec<TicketView>, FloorError> {
        let asks = self.queues().map(|q| q.patient_tickets(patient.clone()));
        let mut out = Vec::new();
        for r in futures_util::future::join_all(asks).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Today's tickets of one HIS adapter, in every queue, with their status.
    pub async fn his_tickets(&self, source: &str) -> Result<Vec<(crate::domain::event::HisRef, crate::domain::queue::Status)>, FloorError> {
        let asks = self.queues().map(|q| q.his_tickets(source.to_owned()));
        let mut out = Vec::new();
        for r in futures_util::future::join_all(asks).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Move a ticket to another queue, keeping its id, number and check-in time.
    ///
    /// The source commits `TransferredOut` first, then the destination commits `TransferredIn`.
    /// If the process dies between the two, [`Floor::recover_transfers`] finishes the move at start-up.
    pub async fn transfer(&self, ticket: &TicketId, to: &QueueId, idem: Option<Idempotency>) -> Result<Outcome, FloorError> {
        let dest = self.queue(to)?.clone();
        let cmd = Command::TransferOut { ticket: ticket.clone(), to: to.clone() };
        // A retry of a transfer that already moved the ticket: the key is recorded by the queue
        // it left (with the ticket's tombstone), not by the one holding it now. Asked there, a
        // replay answers as the first time did, and the key with another request is refused.
        if idem.is_some() {
            let owner = self.directory.get(ticket);
            for q in self.queues.values().filter(|q| Some(q.id()) != owner.as_ref()) {
                if !q.ticket(ticket.clone()).await?.is_some_and(|v| v.transferred_to.is_some()) {
                    continue;
                }
                match q.execute(cmd.clone(), idem.clone()).await {
                    Ok(o) if o.replayed => return Ok(Outcome { ticket: Some(self.ticket(ticket).await?), transferred: None, replayed: true }),
                    Err(CommandError::Rejected(QueueError::IdempotencyConflict(k))) => return Err(QueueError::IdempotencyConflict(k).into()),
                    // Not this queue's key: the ticket merely passed through it.
                    _ => {}
                }
            }
        }
        let out = self.on_ticket(ticket, cmd, idem).await?;
        let Some(data) = out.transferred else {
            // An idempotent retry of a finished transfer: report the ticket where it is now.
            return Ok(Outcome { ticket: Some(self.ticket(ticket).await?), transferred: None, replayed: true });
        };
        let from = out.ticket.as_ref().map(|t| t.queue.clone()).unwrap_or_else(|| to.clone());
        Ok(dest.execute(Command::TransferIn { ticket: data, from }, None).await?)
    }

    /// What a room's caller (a keypad, a nurse) asks of the room. The floor decides which queue
    /// that is: call-next tries the room's queues in the config's order until one has a patient
    /// for it; recall, skip and complete act on the patient the room has called, in whichever
    /// queue. Returns the ticket acted on (none: nobody waits, or a pause).
    pub async fn room_action(&self, room: &RoomId, action: RoomAction, caller: &str, idem: Option<Idempotency>) -> Result<Option<TicketView>, FloorError> {
        let queues = self.hospital.room_queues.get(room).ok_or_else(|| FloorError::UnknownRoom(room.clone()))?;
        match action {
            RoomAction::CallNext => {
                for q in queues {
                    let cmd = Command::CallNext { room: room.clone(), caller: caller.to_owned() };
                    if let Some(t) = self.execute(q, cmd, idem.clone()).await?.ticket {
                        return Ok(Some(t));
                    }
                }
                Ok(None)
            }
            RoomAction::Recall | RoomAction::Skip | RoomAction::Complete => {
                let ticket = self.current_patient(room).await?.ok_or_else(|| FloorError::NoCurrentPatient(room.clone()))?;
                let cmd = match action {
                    RoomAction::Recall => Command::Recall { ticket: ticket.clone() },
                    RoomAction::Skip => Command::Skip { ticket: ticket.clone() },
                    _ => Command::Complete { ticket: ticket.clone() },
                };
                Ok(self.on_ticket(&ticket, cmd, idem).await?.ticket)
            }
            RoomAction::Pause | RoomAction::Resume => {
                self.set_room_paused(room, action == RoomAction::Pause).await?;
                Ok(None)
            }
        }
    }

    /// The patient a room has called or is seeing, across the queues it calls from.
    pub async fn current_patient(&self, room: &RoomId) -> Result<Option<TicketId>, FloorError> {
        for q in self.hospital.room_queues.get(room).into_iter().flatten() {
            let board = self.queue(q)?.board().await?;
            if let Some(t) = board.rooms.iter().find(|r| &r.id == room).and_then(|r| r.current_ticket.clone()) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Pause or resume a room in every queue it calls from.
    pub async fn set_room_paused(&self, room: &RoomId, paused: bool) -> Result<Vec<QueueId>, FloorError> {
        let queues = self.hospital.room_queues.get(room).ok_or_else(|| FloorError::UnknownRoom(room.clone()))?;
        for q in queues {
            let cmd = if paused { Command::PauseRoom { room: room.clone() } } else { Command::ResumeRoom { room: room.clone() } };
            self.execute(q, cmd, None).await?;
        }
        Ok(queues.clone())
    }

    pub async fn snapshots(&self) -> Result<Vec<QueueSnapshot>, FloorError> {
        let mut out = Vec::with_capacity(self.queues.len());
        for q in self.queues.values() {
            out.push(q.snapshot().await?);
        }
        Ok(out)
    }

    /// Finish transfers whose second half never committed (the process died in between).
    pub async fn recover_transfers(&self, pending: Vec<(QueueId, crate::domain::event::TicketData, QueueId)>) -> Result<usize, FloorError> {
        let mut n = 0;
        for (from, data, to) in pending {
            if self.directory.get(&data.id).as_ref() == Some(&to) {
                continue;
            }
            tracing::warn!(ticket = %data.id, %from, %to, "finishing an interrupted transfer");
            self.execute(&to, Command::TransferIn { ticket: data, from }, None).await?;
            n += 1;
        }
        Ok(n)
    }
}
