//! A bank: open an account, deposit, withdraw without overdraft, transfer
//! between two accounts as one decision, a balances projection kept exactly
//! once, and a notice in the outbox for every transfer.
//!
//! The events declare their types and tags once (`#[derive(factos::Event)]`);
//! each decision is composed of [`Account`] states, one per account it is
//! about, each folded from that account's events only
//! ([`factos::states`]). A deposit conflicts with nothing but the account's
//! opening, a withdrawal only with what takes money out
//! ([`factos::dispatch_with_condition`]); a transfer with anything on
//! either account.

use factos::json::JsonCodec;
use factos::states::{StatePart, StatesDecider, over_states};
use factos::{
    Dispatch, DispatchError, OutboxMessage, Query, QueryItem, Recorded, StreamId, Topic,
    ValidationError, dispatch_with_condition, dispatch_with_outbox,
    dispatch_with_outbox_idempotent, dispatch_with_query, dispatch_with_query_idempotent,
};
use factos_postgres::PostgresStore;
use serde::{Deserialize, Serialize};

/// What happened to accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, factos::Event)]
pub enum BankEvent {
    /// An account was opened.
    Opened {
        /// The account.
        #[tag("account")]
        account: String,
        /// Whose it is.
        owner: String,
    },
    /// Money came in.
    Deposited {
        /// The account.
        #[tag("account")]
        account: String,
        /// How much, in cents.
        cents: i64,
    },
    /// Money went out.
    Withdrawn {
        /// The account.
        #[tag("account")]
        account: String,
        /// How much, in cents.
        cents: i64,
    },
    /// Money moved from one account to another.
    Transferred {
        /// Taken from.
        #[tag("account")]
        from: String,
        /// Given to.
        #[tag("account")]
        to: String,
        /// How much, in cents.
        cents: i64,
    },
}

/// One account as a decision sees it: folded from its own events only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account.
    pub id: String,
    /// Whose it is, once opened.
    pub owner: Option<String>,
    /// Its balance, in cents.
    pub cents: i64,
    /// Its events (the query of this part of a decision).
    query: Query,
}

impl Account {
    /// An account as before any event.
    ///
    /// # Errors
    ///
    /// The name does not make a tag (empty, too long, a control character).
    pub fn named(id: &str) -> Result<Self, ValidationError> {
        Ok(Self {
            id: id.to_string(),
            owner: None,
            cents: 0,
            query: BankEvent::account_query(id)?,
        })
    }
}

impl StatePart for Account {
    type Event = BankEvent;

    fn query(&self) -> Query {
        self.query.clone()
    }

    fn evolve(mut self, event: &BankEvent) -> Self {
        match event {
            BankEvent::Opened { owner, .. } => self.owner = Some(owner.clone()),
            BankEvent::Withdrawn { cents, .. } => self.cents -= cents,
            BankEvent::Transferred { from, cents, .. } if *from == self.id => self.cents -= cents,
            // A deposit, or a transfer to this account.
            BankEvent::Deposited { cents, .. } | BankEvent::Transferred { cents, .. } => {
                self.cents += cents;
            }
        }
        self
    }
}

/// What a client asks of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountCommand {
    /// Opens it for `owner`.
    Open {
        /// Whose it will be.
        owner: String,
    },
    /// Puts money in.
    Deposit {
        /// How much, in cents.
        cents: i64,
    },
    /// Takes money out, never more than the balance.
    Withdraw {
        /// How much, in cents.
        cents: i64,
    },
}

/// Why the bank says no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The account is open already.
    AlreadyOpen(String),
    /// There is no such account.
    NoAccount(String),
    /// The balance is too low.
    Insufficient {
        /// The account.
        account: String,
        /// Its balance.
        cents: i64,
    },
    /// An amount must be positive.
    NotPositive,
    /// From an account to itself.
    SameAccount,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyOpen(a) => write!(f, "account {a} is open already"),
            Self::NoAccount(a) => write!(f, "there is no account {a}"),
            Self::Insufficient { account, cents } => {
                write!(f, "account {account} holds {cents} cents")
            }
            Self::NotPositive => f.write_str("an amount must be positive"),
            Self::SameAccount => f.write_str("a transfer needs two accounts"),
        }
    }
}

/// Decides on one account.
pub struct OneAccount;

impl StatesDecider for OneAccount {
    type States = (Account,);
    type Command = AccountCommand;
    type Event = BankEvent;
    type Error = Refusal;

    fn decide(
        &self,
        (account,): &(Account,),
        command: &AccountCommand,
    ) -> Result<Vec<BankEvent>, Refusal> {
        let id = account.id.clone();
        match command {
            AccountCommand::Open { .. } if account.owner.is_some() => Err(Refusal::AlreadyOpen(id)),
            AccountCommand::Open { owner } => Ok(vec![BankEvent::Opened {
                account: id,
                owner: owner.clone(),
            }]),
            _ if account.owner.is_none() => Err(Refusal::NoAccount(id)),
            AccountCommand::Deposit { cents } | AccountCommand::Withdraw { cents }
                if *cents <= 0 =>
            {
                Err(Refusal::NotPositive)
            }
            AccountCommand::Deposit { cents } => Ok(vec![BankEvent::Deposited {
                account: id,
                cents: *cents,
            }]),
            AccountCommand::Withdraw { cents } if *cents > account.cents => {
                Err(Refusal::Insufficient {
                    account: id,
                    cents: account.cents,
                })
            }
            AccountCommand::Withdraw { cents } => Ok(vec![BankEvent::Withdrawn {
                account: id,
                cents: *cents,
            }]),
        }
    }
}

/// A transfer between two accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Taken from.
    pub from: String,
    /// Given to.
    pub to: String,
    /// How much, in cents.
    pub cents: i64,
}

/// Decides a transfer on both accounts.
pub struct TwoAccounts;

impl StatesDecider for TwoAccounts {
    type States = (Account, Account);
    type Command = Transfer;
    type Event = BankEvent;
    type Error = Refusal;

    fn decide(
        &self,
        (from, to): &(Account, Account),
        transfer: &Transfer,
    ) -> Result<Vec<BankEvent>, Refusal> {
        if from.id == to.id {
            return Err(Refusal::SameAccount);
        }
        if transfer.cents <= 0 {
            return Err(Refusal::NotPositive);
        }
        for account in [from, to] {
            if account.owner.is_none() {
                return Err(Refusal::NoAccount(account.id.clone()));
            }
        }
        if transfer.cents > from.cents {
            return Err(Refusal::Insufficient {
                account: from.id.clone(),
                cents: from.cents,
            });
        }
        Ok(vec![BankEvent::Transferred {
            from: from.id.clone(),
            to: to.id.clone(),
            cents: transfer.cents,
        }])
    }
}

/// The outbox topic of the notices.
pub const NOTICES: &str = "notices";

/// A notice to an account's owner, as an outbox payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The account the money came to.
    pub account: String,
    /// What happened.
    pub text: String,
    /// The event's position (the notice's idempotency key downstream).
    pub position: u64,
}

/// The reactor: a notice to the receiving account for every transfer (and
/// nothing for other events, which then commit as plain dispatches do).
pub fn transfer_notice(recorded: &Recorded<BankEvent>) -> Vec<OutboxMessage> {
    let BankEvent::Transferred { from, to, cents } = &recorded.event else {
        return Vec::new();
    };
    let notice = Notice {
        account: to.clone(),
        text: format!("{cents} cents from {from}"),
        position: recorded.position.get(),
    };
    match (Topic::new(NOTICES), serde_json::to_vec(&notice)) {
        (Ok(topic), Ok(bytes)) => vec![OutboxMessage::new(topic, bytes)],
        _ => Vec::new(),
    }
}

fn is_transfer(event: &BankEvent) -> bool {
    matches!(event, BankEvent::Transferred { .. })
}

/// An account name the store accepts as a tag and a stream.
///
/// # Errors
///
/// The name is empty, too long or holds a control character.
pub fn check_account(id: &str) -> Result<(), ValidationError> {
    BankEvent::account_tag(id)?;
    StreamId::new(format!("account-{id}"))?;
    Ok(())
}

/// The events that take money out of `account` (a withdrawal conflicts
/// with these only: a deposit meanwhile leaves its decision safe).
fn money_out(account: &str) -> Result<Query, ValidationError> {
    let tag = BankEvent::account_tag(account)?;
    Ok(Query::from_items([QueryItem::from_parts(
        [
            factos::EventType::new(BankEvent::WITHDRAWN)?,
            factos::EventType::new(BankEvent::TRANSFERRED)?,
        ],
        [tag],
    )]))
}

/// The events that say whether `account` exists (a deposit conflicts with
/// these only).
fn opening(account: &str) -> Result<Query, ValidationError> {
    Ok(Query::from_items([QueryItem::from_parts(
        [factos::EventType::new(BankEvent::OPENED)?],
        [BankEvent::account_tag(account)?],
    )]))
}

/// A dispatch's outcome, typed for the bank.
pub type BankDispatch = Result<Dispatch<BankEvent>, DispatchError<Refusal>>;

/// Runs `command` on `account`; idempotent under `key` when given (then
/// under the full condition: a keyed retry must conflict with its own
/// first attempt's events).
pub async fn handle_account(
    store: &PostgresStore,
    account: &str,
    command: &AccountCommand,
    key: Option<uuid::Uuid>,
) -> BankDispatch {
    check_account(account).map_err(invalid)?;
    let decision = over_states(OneAccount, (Account::named(account).map_err(invalid)?,));
    let stream = StreamId::new(format!("account-{account}")).map_err(invalid)?;
    let codec = JsonCodec::<BankEvent>::new();
    let query = decision.query().clone();
    if let Some(key) = key {
        return dispatch_with_query_idempotent(
            store, &stream, &query, &decision, &codec, command, key,
        )
        .await;
    }
    let condition = match command {
        AccountCommand::Open { .. } => {
            return dispatch_with_query(store, &stream, &query, &decision, &codec, command).await;
        }
        AccountCommand::Deposit { .. } => opening(account),
        AccountCommand::Withdraw { .. } => money_out(account),
    }
    .map_err(invalid)?;
    dispatch_with_condition(
        store, &stream, &query, &condition, &decision, &codec, command,
    )
    .await
}

/// Runs `transfer` as one decision over both accounts, with its notice in
/// the outbox. Its stream is its own (idempotent under `key`: the
/// request's).
pub async fn handle_transfer(
    store: &PostgresStore,
    transfer: &Transfer,
    key: Option<uuid::Uuid>,
) -> BankDispatch {
    check_account(&transfer.from).map_err(invalid)?;
    check_account(&transfer.to).map_err(invalid)?;
    let decision = over_states(
        TwoAccounts,
        (
            Account::named(&transfer.from).map_err(invalid)?,
            Account::named(&transfer.to).map_err(invalid)?,
        ),
    );
    let codec = JsonCodec::<BankEvent>::new();
    let notice = factos::reactor_fn(transfer_notice).when(is_transfer);
    let query = decision.query().clone();
    match key {
        Some(key) => {
            let stream = StreamId::for_request(key);
            dispatch_with_outbox_idempotent(
                store, &stream, &query, &decision, &codec, transfer, &notice, key,
            )
            .await
        }
        None => {
            dispatch_with_outbox(
                store,
                &StreamId::unique(),
                &query,
                &decision,
                &codec,
                transfer,
                &notice,
            )
            .await
        }
    }
}

fn invalid(e: ValidationError) -> DispatchError<Refusal> {
    DispatchError::Encode(factos::EncodeError::Invalid(e))
}
