//! `privacy.forget_site`: what a browser's "forget about this site" does
//! (spec §10). One transaction removes the host's visits (through the
//! browser's own purge, which also clears the tabs that showed them) and
//! its documents with their chunks and embeddings; bookmarks are kept and
//! counted. It is a privacy delete: [`crate::privacy::purge`] makes the
//! deletion physical before the call returns.

use super::documents::{delete_where, host_condition};
use super::text_index::ChunkRemoval;
use crate::browser::history_index::Removal;
use crate::browser::urls::{parse_url, reverse_host, HostMatch};
use crate::db::ConnExt;
use crate::error::Result;
use crate::privacy::Purged;
use crate::profile::Profile;
use crate::types::now_ms;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// Request of `privacy.forget_site`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetSiteRequest {
    pub host: String,
    #[serde(default)]
    pub include_subdomains: Option<bool>,
}

/// Response of `privacy.forget_site`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ForgetSiteResponse {
    pub history_deleted: u64,
    pub documents_deleted: u64,
    pub chunks_deleted: u64,
    pub tabs_cleared: u64,
    pub bookmarks_kept: u64,
}

/// `privacy.forget_site`.
pub fn forget_site(
    profile: &Profile,
    req: ForgetSiteRequest,
) -> Result<Purged<ForgetSiteResponse>> {
    let include_subdomains = req.include_subdomains.unwrap_or(true);
    let host = HostMatch::new(&req.host, include_subdomains)?;
    let (documents_sql, documents_values) =
        host_condition(Some(&req.host), Some(include_subdomains), 1)?;
    let removal = Removal::begin(profile);
    let chunk_removal = ChunkRemoval::new(profile);
    let response = crate::privacy::purge(profile, |tx| {
        let (history_deleted, tabs_cleared) =
            crate::browser::history::purge_host_in(tx, host.clone(), now_ms(), &removal)?;
        let (documents_deleted, chunks_deleted) =
            delete_where(tx, &chunk_removal, &documents_sql, &documents_values)?;
        Ok(ForgetSiteResponse {
            history_deleted,
            documents_deleted,
            chunks_deleted,
            tabs_cleared,
            bookmarks_kept: bookmarks_of(tx, &host)?,
        })
    })?;
    removal.confirm();
    chunk_removal.confirm();
    Ok(response)
}

/// How many bookmarks point at the host (kept, as a browser does).
fn bookmarks_of(conn: &Connection, host: &HostMatch) -> Result<u64> {
    let mut count = 0;
    conn.for_each_row(
        "SELECT url FROM bookmarks",
        [],
        |r| r.get::<_, String>(0),
        |url| {
            let matches = parse_url("url", &url)
                .ok()
                .and_then(|facts| facts.host)
                .is_some_and(|h| host.matches_rev(&reverse_host(&h)));
            count += u64::from(matches);
            Ok(())
        },
    )?;
    Ok(count)
}
