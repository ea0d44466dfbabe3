//! The users, games, versions, games' metadata and pack sizes as of the database's current
//! change counter, kept in memory between requests.
//!
//! Every request reads the counter (`Db::change_seq`, one tiny query) and uses the cached
//! catalog only while the counter has not moved; any committed write — a user disabled or
//! removed, a version becoming Ready — moves it, and the next request loads the catalog
//! again. So the user check on every request stays exact ("disabled users stop at once")
//! while a busy catalog costs one query per request instead of three.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mist_db::Db;
use mist_db::metadata::GameMetadata;
use mist_db::state::{Game, User, Version};

/// The users, games and versions at one value of the change counter.
pub(crate) struct Catalog {
    /// The counter read before the rows were: the rows are at least this new.
    change_seq: i64,
    /// Every user, by name.
    users: HashMap<String, User>,
    /// Every game, by name.
    games: Vec<Game>,
    /// Every version, by game, in version order.
    versions: HashMap<String, Vec<Version>>,
    /// Every game's catalog metadata, by game.
    metadata: HashMap<String, GameMetadata>,
    /// Every pack's size, by address.
    pack_sizes: HashMap<String, u64>,
}

/// The latest [`Catalog`], reloaded when the counter moves.
#[derive(Default)]
pub(crate) struct CatalogCache {
    cache: SeqCache<Catalog>,
}

impl CatalogCache {
    /// The catalog as of now: the cached one if nothing was committed since it was read.
    pub(crate) async fn get(&self, db: &Db) -> Result<Arc<Catalog>, mist_db::Error> {
        let change_seq = db.change_seq().await?;
        self.cache
            .get_at(change_seq, || Catalog::load(db, change_seq))
            .await
    }
}

/// A value read from the database at one value of the change counter, kept while the counter
/// stands still.
pub(crate) struct SeqCache<T> {
    current: RwLock<Option<(i64, Arc<T>)>>,
    /// One reload at a time: concurrent requests that find the value stale wait for it.
    reloading: tokio::sync::Mutex<()>,
}

impl<T> Default for SeqCache<T> {
    fn default() -> SeqCache<T> {
        SeqCache {
            current: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> SeqCache<T> {
    /// The value read at `change_seq` or later: the cached one if it is that new, otherwise
    /// `load`'s, which must read the database after `change_seq` was read.
    pub(crate) async fn get_at<E, Fut>(
        &self,
        change_seq: i64,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.current_at_least(change_seq) {
            return Ok(value);
        }
        let _reloading = self.reloading.lock().await;
        if let Some(value) = self.current_at_least(change_seq) {
            return Ok(value);
        }
        let value = Arc::new(load().await?);
        *self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Some((change_seq, value.clone()));
        Ok(value)
    }

    fn current_at_least(&self, change_seq: i64) -> Option<Arc<T>> {
        self.current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .as_ref()
            .filter(|(seq, _)| *seq >= change_seq)
            .map(|(_, value)| value.clone())
    }
}

impl Catalog {
    /// Reads the rows; `change_seq` must have been read before, so the rows are at least
    /// that new (a write committed in between only causes one more reload later).
    async fn load(db: &Db, change_seq: i64) -> Result<Catalog, mist_db::Error> {
        let users = db
            .users()
            .await?
            .into_iter()
            .map(|user| (user.name.clone(), user))
            .collect();
        let mut games = db.games().await?;
        // Sorted here, not only by the query, because `game` searches it by bytes.
        games.sort_by(|a, b| a.name.cmp(&b.name));
        let mut versions: HashMap<String, Vec<Version>> = HashMap::new();
        for version in db.all_versions().await? {
            versions
                .entry(version.spec.game.clone())
                .or_default()
                .push(version);
        }
        let metadata = db
            .all_game_metadata()
            .await?
            .into_iter()
            .map(|row| (row.game.clone(), row))
            .collect();
        let pack_sizes = db.pack_sizes().await?.into_iter().collect();
        Ok(Catalog {
            change_seq,
            users,
            games,
            versions,
            metadata,
            pack_sizes,
        })
    }

    /// The change counter the catalog was read at (or after).
    pub(crate) fn change_seq(&self) -> i64 {
        self.change_seq
    }

    /// Every user, by name.
    pub(crate) fn users(&self) -> Vec<&User> {
        let mut users: Vec<&User> = self.users.values().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// A user by name.
    pub(crate) fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every game, by name.
    pub(crate) fn games(&self) -> &[Game] {
        &self.games
    }

    /// A game by name.
    pub(crate) fn game(&self, name: &str) -> Option<&Game> {
        self.games
            .binary_search_by(|game| game.name.as_str().cmp(name))
            .ok()
            .map(|idx| &self.games[idx])
    }

    /// A game's versions in version order, oldest first.
    pub(crate) fn versions_of(&self, game: &str) -> &[Version] {
        self.versions.get(game).map_or(&[], Vec::as_slice)
    }

    /// A game's catalog metadata, if it has any.
    pub(crate) fn metadata_of(&self, game: &str) -> Option<&GameMetadata> {
        self.metadata.get(game)
    }

    /// The size of the pack at `address`, if it is one.
    pub(crate) fn pack_size(&self, address: &str) -> Option<u64> {
        self.pack_sizes.get(address).copied()
    }
}
