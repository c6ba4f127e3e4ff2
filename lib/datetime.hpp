// Dates for header fields (RFC 5322 section 3.3).
#pragma once
#include <ctime>
#include <string>

namespace yubin {

// "Mon, 3 Nov 2026 12:34:56 +0000": t in the local time zone (localtime_r,
// so TZ as last read by tzset()) with its numeric offset from tm_gmtoff.
// Day and month names are English whatever the locale; the day of the month
// has no leading zero, as in RFC 5322's examples. If t cannot be converted
// to local time, it is written in UTC; if not even that, the epoch.
std::string rfc5322_date(time_t t);

}  // namespace yubin
