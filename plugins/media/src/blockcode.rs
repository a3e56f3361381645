//! A frame number drawn into the picture as a block code, and read back from pixels.
//!
//! Test clips carry their own frame number so a test can tell, from the composited output
//! alone, which content frame was shown. Two rows of 8×8-pixel cells at the top-left:
//! row 0 holds the number's [`BITS`] bits, most significant first (white = 1, black = 0);
//! row 1 holds their complement, so a misread (scaling, compression, a torn frame) is
//! detected instead of giving a wrong number. Cells are read at their centre 4×4 pixels,
//! thresholded at 50 % luma. Cells align with 8×8 macroblocks, so H.264 keeps them sharp.

/// Cell side in pixels.
pub const CELL: u32 = 8;
/// Bits in the code: frame numbers up to 65535.
pub const BITS: u32 = 16;

/// Why a block code could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockCodeError {
    #[error("picture {width}×{height} is too small for a block code ({need_w}×{need_h} pixels)")]
    TooSmall {
        width: u32,
        height: u32,
        need_w: u32,
        need_h: u32,
    },
    #[error(
        "block code unreadable: row 0 reads {value:#06x} but row 1 is not its complement ({check:#06x})"
    )]
    Mismatch { value: u32, check: u32 },
}

fn size_check(width: u32, height: u32) -> Result<(), BlockCodeError> {
    if width < BITS * CELL || height < 2 * CELL {
        return Err(BlockCodeError::TooSmall {
            width,
            height,
            need_w: BITS * CELL,
            need_h: 2 * CELL,
        });
    }
    Ok(())
}

/// Draws `value` (low [`BITS`] bits) into the RGBA8 picture `rgba` (`width`×`height`,
/// rows tightly packed).
pub fn draw(value: u32, rgba: &mut [u8], width: u32, height: u32) -> Result<(), BlockCodeError> {
    size_check(width, height)?;
    for row in 0..2 {
        for bit in 0..BITS {
            let one = (value >> (BITS - 1 - bit)) & 1 == 1;
            let white = if row == 0 { one } else { !one };
            let level = if white { 255 } else { 0 };
            for y in row * CELL..(row + 1) * CELL {
                for x in bit * CELL..(bit + 1) * CELL {
                    let i = ((y * width + x) * 4) as usize;
                    rgba[i..i + 4].copy_from_slice(&[level, level, level, 255]);
                }
            }
        }
    }
    Ok(())
}

/// Reads the value drawn by [`draw`] from an RGBA8 picture.
pub fn read(rgba: &[u8], width: u32, height: u32) -> Result<u32, BlockCodeError> {
    size_check(width, height)?;
    let cell_on = |row: u32, bit: u32| {
        let (x0, y0) = (bit * CELL + CELL / 4, row * CELL + CELL / 4);
        let mut sum = 0u32;
        for y in y0..y0 + CELL / 2 {
            for x in x0..x0 + CELL / 2 {
                let i = ((y * width + x) * 4) as usize;
                // Rec. 709 luma, integer weights summing to 10000.
                sum += (2126 * u32::from(rgba[i])
                    + 7152 * u32::from(rgba[i + 1])
                    + 722 * u32::from(rgba[i + 2]))
                    / 10000;
            }
        }
        sum / (CELL / 2 * CELL / 2) >= 128
    };
    let (mut value, mut check) = (0, 0);
    for bit in 0..BITS {
        value = (value << 1) | u32::from(cell_on(0, bit));
        check = (check << 1) | u32::from(cell_on(1, bit));
    }
    if value ^ check != (1 << BITS) - 1 {
        return Err(BlockCodeError::Mismatch { value, check });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        let (w, h) = (160, 24);
        for value in [0, 1, 2, 29, 30, 1000, 65535] {
            let mut pic = vec![90u8; (w * h * 4) as usize];
            draw(value, &mut pic, w, h).expect("fits");
            assert_eq!(read(&pic, w, h), Ok(value), "value {value}");
        }
    }

    #[test]
    fn a_damaged_code_is_refused_not_misread() {
        let (w, h) = (128, 16);
        let mut pic = vec![0u8; (w * h * 4) as usize];
        draw(5, &mut pic, w, h).expect("fits");
        // Blank row 1: the check no longer matches.
        for b in pic[(CELL * w * 4) as usize..].iter_mut() {
            *b = 0;
        }
        assert!(matches!(
            read(&pic, w, h),
            Err(BlockCodeError::Mismatch { .. })
        ));
        assert!(matches!(
            read(&pic, 64, 16),
            Err(BlockCodeError::TooSmall { .. })
        ));
    }
}
