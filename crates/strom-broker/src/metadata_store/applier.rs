//! The applier: the one place committed metadata records are applied. Each batch makes a new
//! image, published on a `watch` channel (handlers read the newest), and handed with its
//! delta to the reconciler, if one is attached (it never misses one: an unbounded queue).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use strom_meta::{MetaError, MetadataDelta, MetadataImage, MetadataRecord};
use tokio::sync::watch;

/// An image and the metadata offset it holds everything before.
#[derive(Debug, Clone)]
pub struct Published {
    pub image: Arc<MetadataImage>,
    pub offset: i64,
}

/// What the reconciler receives for each applied batch.
#[derive(Debug)]
pub struct Change {
    pub image: Arc<MetadataImage>,
    pub delta: MetadataDelta,
    pub offset: i64,
}

#[derive(Debug)]
pub struct Applier {
    /// The reconciler's queue, once attached.
    sink: Mutex<Option<Sender<Change>>>,
    published: watch::Sender<Published>,
}

impl Applier {
    pub fn new() -> Arc<Applier> {
        let (published, _) = watch::channel(Published {
            image: Arc::new(MetadataImage::default()),
            offset: 0,
        });
        Arc::new(Applier {
            sink: Mutex::new(None),
            published,
        })
    }

    pub fn published(&self) -> Published {
        self.published.borrow().clone()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.published.borrow().image)
    }

    /// Applies one committed batch whose records end before `end_offset`. A record that does
    /// not fit is an error and nothing of the batch is applied.
    pub fn apply(&self, records: &[MetadataRecord], end_offset: i64) -> Result<(), MetaError> {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.published();
        let mut next = (*current.image).clone();
        let mut delta = MetadataDelta::default();
        next.apply_all(records, &mut delta)?;
        self.publish(&mut sink, Arc::new(next), delta, end_offset);
        Ok(())
    }

    /// Moves the applied offset past a position that changed nothing in the image.
    pub fn advance(&self, end_offset: i64) {
        let _sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        self.published.send_if_modified(|p| {
            let moved = end_offset > p.offset;
            p.offset = p.offset.max(end_offset);
            moved
        });
    }

    /// Replaces the image (a snapshot was loaded): everything may have changed.
    pub fn load(&self, image: MetadataImage, offset: i64) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let delta = MetadataDelta::everything(&self.image(), &image);
        self.publish(&mut sink, Arc::new(image), delta, offset);
    }

    fn publish(
        &self,
        sink: &mut Option<Sender<Change>>,
        image: Arc<MetadataImage>,
        delta: MetadataDelta,
        offset: i64,
    ) {
        self.published.send_replace(Published {
            image: Arc::clone(&image),
            offset,
        });
        if let Some(tx) = sink.as_ref() {
            let change = Change {
                image,
                delta,
                offset,
            };
            if tx.send(change).is_err() {
                *sink = None;
            }
        }
    }

    /// Attaches the reconciler: it gets every change after the returned image.
    pub fn attach(&self, tx: Sender<Change>) -> Published {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        *sink = Some(tx);
        self.published()
    }

    /// Every image published from now on.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// Waits until everything before `offset` is applied; returns the image then published.
    pub async fn wait_applied(&self, offset: i64) -> Published {
        let mut rx = self.published.subscribe();
        let result = rx.wait_for(|p| p.offset >= offset).await.map(|p| p.clone());
        result.unwrap_or_else(|_| self.published())
    }
}
