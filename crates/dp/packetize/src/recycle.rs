//! Reusing the allocation of a `Vec` of slice references across calls.
//!
//! The FEC APIs take `&[&[u8]]` / `&mut [&mut [u8]]`, so every frame needs a vector of up to
//! 65535 slice references whose lifetime is that frame's. Storing such a vector in a struct would
//! tie the struct to the frame's lifetime; allocating it per frame would break the no-allocation
//! rule. Instead the struct keeps an *empty* `Vec<&'static T>` and each frame converts it to a
//! `Vec<&'frame T>` and back. `Vec::into_iter().map(..).collect()` reuses the source allocation
//! when source and target element layouts match (std's in-place collect), which they always do
//! here (both are fat pointers); `tests/no_alloc.rs` checks that no allocation happens.

/// Empty `v` and hand its allocation back with a different reference lifetime.
pub(crate) fn recycle<'a, 'b, T: ?Sized>(mut v: Vec<&'a T>) -> Vec<&'b T> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b T { unreachable!("the vector was cleared") })
        .collect()
}

/// [`recycle`] for mutable references.
pub(crate) fn recycle_mut<'a, 'b, T: ?Sized>(mut v: Vec<&'a mut T>) -> Vec<&'b mut T> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b mut T { unreachable!("the vector was cleared") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_keeps_the_allocation() {
        let mut v: Vec<&'static [u8]> = Vec::with_capacity(100);
        let cap = v.capacity();
        let ptr = v.as_ptr() as usize;
        let data = [1u8, 2, 3];
        let mut w: Vec<&[u8]> = recycle(std::mem::take(&mut v));
        w.push(&data[..]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.as_ptr() as usize, ptr);
        v = recycle(w);
        assert!(v.is_empty());
        assert_eq!(v.capacity(), cap);
        assert_eq!(v.as_ptr() as usize, ptr);
        let mut buf = [0u8; 4];
        let mut m: Vec<&mut [u8]> = recycle_mut(Vec::<&'static mut [u8]>::with_capacity(8));
        let c = m.capacity();
        m.push(&mut buf[..]);
        let back: Vec<&'static mut [u8]> = recycle_mut(m);
        assert_eq!(back.capacity(), c);
    }
}
