#include "datetime.hpp"

#include <cstdio>

namespace yubin {

namespace {

constexpr const char* day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool broken_down(time_t t, struct tm& tm) {
    if (localtime_r(&t, &tm) != nullptr) return true;
    if (gmtime_r(&t, &tm) != nullptr) {
        tm.tm_gmtoff = 0;
        return true;
    }
    time_t epoch = 0;
    if (gmtime_r(&epoch, &tm) != nullptr) {
        tm.tm_gmtoff = 0;
        return true;
    }
    return false;
}

}  // namespace

std::string rfc5322_date(time_t t) {
    struct tm tm {};
    if (!broken_down(t, tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
        return "Thu, 1 Jan 1970 00:00:00 +0000";
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    long off_hours = off / 3600;
    long off_minutes = (off % 3600) / 60;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s, %d %s %04lld %02d:%02d:%02d %c%02ld%02ld", day_names[tm.tm_wday],
                  tm.tm_mday, month_names[tm.tm_mon], static_cast<long long>(tm.tm_year) + 1900, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, sign, off_hours, off_minutes);
    return buf;
}

}  // namespace yubin
