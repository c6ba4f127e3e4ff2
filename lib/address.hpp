// Mail addresses: splitting, comparing, quoting, and parsing the two syntaxes
// yubin meets: the SMTP path of MAIL FROM/RCPT TO (RFC 5321, RFC 6531) and
// the address lists of header fields (RFC 5322).
//
// Every function here takes untrusted input, never throws on bad syntax and
// does work linear in the size of its input.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

// Limits of RFC 5321 section 4.5.3.1.
inline constexpr size_t max_local_part_length = 64;
inline constexpr size_t max_domain_length = 255;
inline constexpr size_t max_path_length = 256;  // "<...>" including brackets

// Split at the LAST '@' that is outside a quoted string (RFC 5321 last-@ rule:
// "a@b"@example.com has local part "a@b" (quoted, returned as written) and
// domain example.com). No such '@' -> domain empty, local = whole input.
// An unterminated quote is ignored (the plain last '@' is used).
struct AddressParts {
    std::string local;
    std::string domain;
};
AddressParts split_address(std::string_view address);

// Domains compare case-insensitively and ignore one trailing dot.
std::string normalize_domain(std::string_view domain);  // lowercase ASCII, strip one trailing '.'
bool domain_equal(std::string_view a, std::string_view b);

// True if s is a dot-atom: atoms of RFC 5321 atext (and octets >= 0x80)
// separated by single dots, no leading or trailing dot, not empty.
bool is_dot_atom(std::string_view s);

// A local part as it should be written in an address: dot-atom as is,
// otherwise as an RFC 5321 quoted-string with \\ and \" escaped.
std::string quote_local_part(std::string_view local_unquoted);
// Remove quoting: "\"a b\"" -> "a b" (returns input unchanged if it is not
// exactly one well-formed quoted string).
std::string unquote_local_part(std::string_view local);

// RFC 5321 Path, the argument of MAIL FROM: and RCPT TO:, starting at '<'.
// On success address is "local@domain" with the local part in its minimal
// form (quote_local_part(unquote_local_part(as written)), so "\"joe\"" and
// joe are the same mailbox) and the domain normalized (normalize_domain);
// an address literal ([192.0.2.1], [IPv6:...]) is kept as written. A source
// route is accepted and discarded. <postmaster> (any case) gives
// "postmaster". The null path gives null_path = true and address "".
// consumed counts the bytes through the '>'.
// On failure error is a short reason for an SMTP reply.
struct PathResult {
    bool ok = false;
    bool null_path = false;
    std::string address;
    std::string error;
    size_t consumed = 0;
};
PathResult parse_smtp_path(std::string_view in, bool allow_null, bool utf8);

// RFC 5322 address-list of a header field value (already unfolded): display
// names, comments, groups, obsolete routes, quoted local parts. Returns the
// addr-specs in order as written ("local@domain", or "local" for a bare local
// part), minus comments and white space; the domain is not lowercased. An
// entry that does not parse is skipped up to the next ',' (or group ';').
std::vector<std::string> parse_address_list(std::string_view value);

// True if the address contains no CR, LF, NUL and is at most max_len octets.
bool address_is_storable(std::string_view address, size_t max_len = 1000);

}  // namespace yubin
