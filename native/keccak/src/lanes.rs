//! keccak256 of four equal-length messages at once, one message per 64-bit lane of AVX2's
//! 256-bit registers (as XKCP's `KeccakP-1600-times4`): the Merkle tree's hashes are many
//! independent messages of one length. Without AVX2, one message at a time (tiny-keccak).

use crate::keccak;

pub(crate) const RATE: usize = 136;

/// A keccak-f[1600] state, lane (x, y) at 5y + x, little-endian words.
pub(crate) type State = [u64; 25];

const ROUND_CONSTANTS: [u64; 24] = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808a, 0x8000000080008000,
    0x000000000000808b, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008a, 0x0000000000000088, 0x0000000080008009, 0x000000008000000a,
    0x000000008000808b, 0x800000000000008b, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800a, 0x800000008000000a,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
];
/// ρ offsets along π's cycle through the lanes (lane 1, then PI[0], PI[1], …).
const RHO: [u32; 24] = [1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44];
const PI: [usize; 24] = [10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1];

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{State, PI, RATE, RHO, ROUND_CONSTANTS};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor(a: __m256i, b: __m256i) -> __m256i {
        _mm256_xor_si256(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn rotl(x: __m256i, n: u32) -> __m256i {
        let left = _mm256_sllv_epi64(x, _mm256_set1_epi64x(n as i64));
        let right = _mm256_srlv_epi64(x, _mm256_set1_epi64x(64 - n as i64));
        _mm256_or_si256(left, right)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn keccak_f(a: &mut [__m256i; 25]) {
        for rc in ROUND_CONSTANTS {
            // θ
            let mut c = [_mm256_setzero_si256(); 5];
            for x in 0..5 {
                c[x] = xor(xor(xor(a[x], a[x + 5]), xor(a[x + 10], a[x + 15])), a[x + 20]);
            }
            for x in 0..5 {
                let d = xor(c[(x + 4) % 5], rotl(c[(x + 1) % 5], 1));
                for y in 0..5 {
                    a[5 * y + x] = xor(a[5 * y + x], d);
                }
            }
            // ρ and π
            let mut last = a[1];
            for i in 0..24 {
                let moved = a[PI[i]];
                a[PI[i]] = rotl(last, RHO[i]);
                last = moved;
            }
            // χ
            for y in 0..5 {
                let row = [a[5 * y], a[5 * y + 1], a[5 * y + 2], a[5 * y + 3], a[5 * y + 4]];
                for x in 0..5 {
                    a[5 * y + x] = xor(row[x], _mm256_andnot_si256(row[(x + 1) % 5], row[(x + 2) % 5]));
                }
            }
            // ι
            a[0] = xor(a[0], _mm256_set1_epi64x(rc as i64));
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn absorb(state: &mut [__m256i; 25], blocks: [&[u8]; 4]) {
        let word = |k: usize, i: usize| i64::from_le_bytes(blocks[k][8 * i..8 * i + 8].try_into().unwrap());
        for i in 0..RATE / 8 {
            state[i] = xor(state[i], _mm256_set_epi64x(word(3, i), word(2, i), word(1, i), word(0, i)));
        }
        keccak_f(state);
    }

    /// The four 32-byte digests of the four lanes of `state` into `out`, message by message.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn squeeze(state: &[__m256i; 25], out: &mut [u8]) {
        let mut lanes = [[0u64; 4]; 4];
        for (i, lane) in lanes.iter_mut().enumerate() {
            // SAFETY: an unaligned store of 32 bytes into a [u64; 4].
            unsafe { _mm256_storeu_si256(lane.as_mut_ptr().cast(), state[i]) };
        }
        for (k, digest) in out.chunks_exact_mut(32).enumerate() {
            for i in 0..4 {
                digest[8 * i..8 * i + 8].copy_from_slice(&lanes[i][k].to_le_bytes());
            }
        }
    }

    /// keccak256 of the four messages (of one length) into `out` (4 × 32 bytes).
    #[target_feature(enable = "avx2")]
    pub(super) fn keccak256_x4(messages: [&[u8]; 4], out: &mut [u8]) {
        let len = messages[0].len();
        let mut state = [_mm256_setzero_si256(); 25];
        let full = len / RATE * RATE;
        for at in (0..full).step_by(RATE) {
            absorb(&mut state, messages.map(|m| &m[at..at + RATE]));
        }
        let mut last = [[0u8; RATE]; 4];
        for (block, message) in last.iter_mut().zip(messages) {
            block[..len - full].copy_from_slice(&message[full..]);
            block[len - full] ^= 0x01; // keccak's padding (not SHA-3's 0x06)
            block[RATE - 1] ^= 0x80;
        }
        absorb(&mut state, [&last[0], &last[1], &last[2], &last[3]]);
        squeeze(&state, out);
    }

    /// The states after absorbing one block (RATE bytes) of each of four messages.
    #[target_feature(enable = "avx2")]
    pub(super) fn absorb_first_x4(blocks: [&[u8]; 4], out: &mut [State; 4]) {
        let mut state = [_mm256_setzero_si256(); 25];
        absorb(&mut state, blocks);
        for (i, lane) in state.iter().enumerate() {
            let mut words = [0u64; 4];
            // SAFETY: an unaligned store of 32 bytes into a [u64; 4].
            unsafe { _mm256_storeu_si256(words.as_mut_ptr().cast(), *lane) };
            for (k, state) in out.iter_mut().enumerate() {
                state[i] = words[k];
            }
        }
    }

    /// keccak256 of four messages whose first block is absorbed in `states` and whose last
    /// blocks, padded, are `last` (4 × 32 bytes into `out`).
    #[target_feature(enable = "avx2")]
    pub(super) fn finish_x4(states: [&State; 4], last: &[[u8; RATE]; 4], out: &mut [u8]) {
        let mut state = [_mm256_setzero_si256(); 25];
        for (i, lane) in state.iter_mut().enumerate() {
            *lane = _mm256_set_epi64x(states[3][i] as i64, states[2][i] as i64, states[1][i] as i64,
                                      states[0][i] as i64);
        }
        absorb(&mut state, [&last[0], &last[1], &last[2], &last[3]]);
        squeeze(&state, out);
    }
}

fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn keccak256_x4(messages: [&[u8]; 4], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::keccak256_x4(messages, out) };
    }
    for (message, digest) in messages.iter().zip(out.chunks_exact_mut(32)) {
        keccak(message, digest);
    }
}

/// keccak256 of n messages of `len` bytes into `out` (n × 32 bytes): `message(i, buf)` writes
/// message i into `buf`; four are hashed at a time.
pub(crate) fn keccak_each(out: &mut [u8], len: usize, mut message: impl FnMut(usize, &mut [u8])) {
    let mut scratch = vec![0u8; 4 * len];
    let mut groups = out.chunks_exact_mut(128);
    let mut i = 0;
    for digests in &mut groups {
        for (k, buf) in scratch.chunks_exact_mut(len.max(1)).enumerate().take(4) {
            message(i + k, &mut buf[..len]);
        }
        let m = |k: usize| &scratch[k * len..(k + 1) * len];
        keccak256_x4([m(0), m(1), m(2), m(3)], digests);
        i += 4;
    }
    for digest in groups.into_remainder().chunks_exact_mut(32) {
        message(i, &mut scratch[..len]);
        keccak(&scratch[..len], digest);
        i += 1;
    }
}

fn xor_block(state: &mut State, block: &[u8]) {
    for (lane, word) in state.iter_mut().zip(block.chunks_exact(8)) {
        *lane ^= u64::from_le_bytes(word.try_into().unwrap());
    }
}

/// The states after absorbing the first block (RATE bytes) of each of four messages, so
/// messages that share it hash on from there (keccak absorbs block by block).
pub(crate) fn absorb_first_x4(blocks: [&[u8]; 4], out: &mut [State; 4]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::absorb_first_x4(blocks, out) };
    }
    for (state, block) in out.iter_mut().zip(blocks) {
        *state = [0; 25];
        xor_block(state, &block[..RATE]);
        tiny_keccak::keccakf(state);
    }
}

/// keccak256 of four messages of one length whose first RATE bytes are absorbed in `states`
/// and whose rest (under RATE bytes each) is `tails`: 4 × 32 bytes into `out`.
pub(crate) fn finish_x4(states: [&State; 4], tails: [&[u8]; 4], out: &mut [u8]) {
    let len = tails[0].len();
    assert!(len < RATE && tails.iter().all(|t| t.len() == len), "tails of one length under a block");
    let mut last = [[0u8; RATE]; 4];
    for (block, tail) in last.iter_mut().zip(tails) {
        block[..len].copy_from_slice(tail);
        block[len] ^= 0x01; // keccak's padding (not SHA-3's 0x06)
        block[RATE - 1] ^= 0x80;
    }
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::finish_x4(states, &last, out) };
    }
    for ((state, block), digest) in states.into_iter().zip(&last).zip(out.chunks_exact_mut(32)) {
        let mut state = *state;
        xor_block(&mut state, block);
        tiny_keccak::keccakf(&mut state);
        for (word, lane) in digest.chunks_exact_mut(8).zip(state) {
            word.copy_from_slice(&lane.to_le_bytes());
        }
    }
}
