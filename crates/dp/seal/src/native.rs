//! `strahl/1` per-packet sealing: nonce = IV xor packet number, key update before 2^23 packets,
//! replay window on the receiver.
