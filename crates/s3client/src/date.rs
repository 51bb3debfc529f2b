//! UTC timestamps in the three forms the signers need, without a date crate.
//!
//! * `YYYYMMDDTHHMMSSZ` (SigV4 `x-amz-date`; also s3backer's mount-token body),
//! * `YYYYMMDD` (SigV4 credential scope: the first 8 characters of the above),
//! * RFC 1123 `Sun, 06 Nov 1994 08:49:37 GMT` (SigV2 `Date`).
//!
//! The calendar conversion is the classic "civil from days" algorithm (proleptic Gregorian,
//! exact for every date from 1970 on); times before the Unix epoch are clamped to it.

use std::time::{SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down UTC time (second resolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UtcTime {
    year: u64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday
    weekday: u32,
}

impl UtcTime {
    /// Converts a system time (clamped to the epoch if earlier).
    pub(crate) fn from_system(t: SystemTime) -> UtcTime {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        UtcTime::from_unix(secs)
    }

    /// Converts seconds since the Unix epoch.
    pub(crate) fn from_unix(secs: u64) -> UtcTime {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            // 1970-01-01 was a Thursday.
            weekday: ((days + 4) % 7) as u32,
        }
    }

    /// `YYYYMMDDTHHMMSSZ`.
    pub(crate) fn amz_datetime(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// RFC 1123, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub(crate) fn rfc1123(&self) -> String {
        format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            WEEKDAYS[self.weekday as usize % 7],
            self.day,
            MONTHS[(self.month as usize + 11) % 12],
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31).
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Formats `t` as `YYYYMMDDTHHMMSSZ` (UTC): the timestamp format of SigV4 and of the body of
/// s3backer's mount-token object (facts §2.6).
pub fn format_amz_timestamp(t: SystemTime) -> String {
    UtcTime::from_system(t).amz_datetime()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch() {
        let t = UtcTime::from_unix(0);
        assert_eq!(t.amz_datetime(), "19700101T000000Z");
        assert_eq!(t.amz_datetime()[..8].to_string(), "19700101");
        assert_eq!(t.rfc1123(), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rfc_examples() {
        // RFC 7231's example date.
        assert_eq!(
            UtcTime::from_unix(784_111_777).rfc1123(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        // AWS's SigV4 example date.
        let t = UtcTime::from_unix(1_369_353_600);
        assert_eq!(t.amz_datetime(), "20130524T000000Z");
        assert_eq!(t.rfc1123(), "Fri, 24 May 2013 00:00:00 GMT");
        // AWS's SigV2 example date (Tue, 27 Mar 2007 19:36:42).
        assert_eq!(
            UtcTime::from_unix(1_175_024_202).rfc1123(),
            "Tue, 27 Mar 2007 19:36:42 GMT"
        );
    }

    #[test]
    fn leap_years_and_year_ends() {
        assert_eq!(
            UtcTime::from_unix(951_782_400).amz_datetime()[..8].to_string(),
            "20000229"
        );
        assert_eq!(
            UtcTime::from_unix(951_868_800).amz_datetime()[..8].to_string(),
            "20000301"
        );
        assert_eq!(
            UtcTime::from_unix(1_709_164_800).amz_datetime()[..8].to_string(),
            "20240229"
        );
        assert_eq!(
            UtcTime::from_unix(4_102_444_799).amz_datetime(),
            "20991231T235959Z"
        );
        assert_eq!(
            UtcTime::from_unix(4_102_444_800).rfc1123(),
            "Fri, 01 Jan 2100 00:00:00 GMT"
        );
        // 2100 is not a leap year.
        assert_eq!(
            UtcTime::from_unix(4_107_542_400).amz_datetime()[..8].to_string(),
            "21000301"
        );
    }

    #[test]
    fn every_day_round_trips_through_a_naive_calendar() {
        // Walk day by day from 1970 to 2200 with a naive calendar and compare.
        let (mut y, mut m, mut d) = (1970u64, 1u32, 1u32);
        for days in 0..84_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn system_time_before_epoch_is_clamped() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(format_amz_timestamp(before), "19700101T000000Z");
        assert_eq!(
            format_amz_timestamp(UNIX_EPOCH + Duration::from_secs(1_369_353_600)),
            "20130524T000000Z"
        );
    }
}
