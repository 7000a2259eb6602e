//! The maps being served: one or more venues, swapped whole. A new map is read and validated
//! completely before it replaces the old one; a bad map leaves the old one serving. Readers take
//! an `Arc` snapshot and never wait for a reload.

use super::load::{load_dir, MapIssue, MapIssues};
use super::model::{Endpoint, VenueMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Where the maps come from: the embedded demo hospital, or folders on disk.
#[derive(Debug, Clone)]
pub enum MapSource {
    Demo,
    Dirs(Vec<PathBuf>),
}

#[derive(Debug)]
pub struct Atlas {
    pub venues: Vec<Arc<VenueMap>>,
}

/// A place reference resolved in a venue.
pub struct Resolved {
    pub venue: Arc<VenueMap>,
    pub endpoint: Endpoint,
}

#[derive(Debug, PartialEq)]
pub enum ResolveError {
    Unknown(String),
    /// The two ends are in different venues (or the venue named is not served).
    CrossVenue { from: String, to: String },
    UnknownVenue(String),
}

impl Atlas {
    pub fn load(source: &MapSource) -> Result<Atlas, MapIssues> {
        let venues = match source {
            MapSource::Demo => vec![Arc::new(super::demo())],
            MapSource::Dirs(dirs) => {
                let mut venues: Vec<Arc<VenueMap>> = Vec::new();
                let mut issues = Vec::new();
                for d in dirs {
                    match load_dir(d) {
                        Ok(m) if venues.iter().any(|v| v.id == m.id) => issues.push(MapIssue {
                            file: format!("{}/venue.geojson", d.display()),
                            feature: Some(m.id.clone()),
                            message: "two map folders describe the same venue".into(),
                        }),
                        Ok(m) => venues.push(Arc::new(m)),
                        Err(MapIssues(is)) => issues.extend(is.into_iter().map(|mut i| {
                            i.file = format!("{}/{}", d.display(), i.file);
                            i
                        })),
                    }
                }
                if !issues.is_empty() {
                    return Err(MapIssues(issues));
                }
                venues
            }
        };
        Ok(Atlas { venues })
    }

    pub fn venue(&self, id: &str) -> Option<&Arc<VenueMap>> {
        self.venues.iter().find(|v| v.id == id)
    }

    /// A reference is `REF` or `VENUE/REF` (see [`VenueMap::resolve`]).
    fn resolve_all(&self, reference: &str) -> Result<Vec<Resolved>, ResolveError> {
        let (venues, r): (Vec<&Arc<VenueMap>>, &str) = match reference.split_once('/') {
            Some((v, r)) if !v.contains(':') && !r.contains("/kiosk/") => match self.venue(v) {
                Some(m) => (vec![m], r),
                None => return Err(ResolveError::UnknownVenue(v.to_owned())),
            },
            _ => (self.venues.iter().collect(), reference),
        };
        let found: Vec<Resolved> = venues.into_iter().filter_map(|v| v.resolve(r).map(|endpoint| Resolved { venue: v.clone(), endpoint })).collect();
        if found.is_empty() {
            return Err(ResolveError::Unknown(reference.to_owned()));
        }
        Ok(found)
    }

    pub fn resolve(&self, reference: &str) -> Result<Resolved, ResolveError> {
        self.resolve_all(reference).map(|mut v| v.swap_remove(0))
    }

    /// Both ends of a route, in one venue.
    pub fn resolve_pair(&self, from: &str, to: &str) -> Result<(Resolved, Resolved), ResolveError> {
        let f = self.resolve_all(from)?;
        let t = self.resolve_all(to)?;
        for a in &f {
            if let Some(b) = t.iter().find(|b| b.venue.id == a.venue.id) {
                return Ok((Resolved { venue: a.venue.clone(), endpoint: a.endpoint.clone() }, Resolved { venue: b.venue.clone(), endpoint: b.endpoint.clone() }));
            }
        }
        Err(ResolveError::CrossVenue { from: f[0].venue.id.clone(), to: t[0].venue.id.clone() })
    }
}

/// The served atlas and where to reload it from.
pub struct MapStore {
    source: MapSource,
    current: RwLock<Arc<Atlas>>,
}

impl MapStore {
    pub fn new(source: MapSource) -> Result<MapStore, MapIssues> {
        let atlas = Atlas::load(&source)?;
        Ok(MapStore { source, current: RwLock::new(Arc::new(atlas)) })
    }

    pub fn current(&self) -> Arc<Atlas> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the map folders; swaps them in only when every one is valid.
    pub fn reload(&self) -> Result<Arc<Atlas>, MapIssues> {
        self.reload_checked(|_| Ok(())).map(|(a, _)| a)
    }

    /// Re-reads the map folders; swaps them in only when every one is valid and `check` (what
    /// else depends on the maps, e.g. the radio maps) accepts them.
    pub fn reload_checked<T>(&self, check: impl FnOnce(&Atlas) -> Result<T, MapIssues>) -> Result<(Arc<Atlas>, T), MapIssues> {
        let atlas = Arc::new(Atlas::load(&self.source)?);
        let fitted = check(&atlas)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = atlas.clone();
        Ok((atlas, fitted))
    }

    pub fn source(&self) -> &MapSource {
        &self.source
    }
}
