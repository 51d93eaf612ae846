//! GRE tracking, after Linux `nf_conntrack_proto_gre.c`.

use crate::time::Tick;
use crate::track::{CtFlags, EntryMeta, OtherTimeouts};

/// Linux `nf_conntrack_gre_packet`: the unreplied timeout until a reply has been seen (as it
/// was before this packet), then the stream timeout and ASSURED.
pub fn packet(meta: &mut EntryMeta, now: Tick, t: &OtherTimeouts) {
    if meta.flags.seen_reply() {
        meta.expires = now.after(t.gre_stream);
        meta.flags.set(CtFlags::ASSURED);
    } else {
        meta.expires = now.after(t.gre_unreplied);
    }
}
