// RFC 5322 header sections: parsing the header block at the start of a
// message, looking fields up, editing the list, writing it back, and folding
// and unfolding field values.
//
// Messages inside yubin use LF line ends; parse() also accepts CRLF (the CR
// before each LF is dropped). All functions take untrusted input, never throw
// on bad syntax and do work linear in the size of their input.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

// One header field. value is the raw text after the ':' up to (not
// including) the field's final line end; continuation lines are kept with
// their LF (never a CR), so "Subject: a\n b" has value " a\n b".
struct HeaderField {
    std::string name;
    std::string value;
};

class HeaderBlock {
public:
    // Parse the header section at the start of message.
    // The section ends
    //  - at the first empty line: body_offset is the index just after it
    //    (so a message starting with an empty line has an empty header and
    //    body_offset 1);
    //  - at the first line that is neither a field (a name of printable
    //    ASCII 33..126 except ':', then ':') nor a continuation (a line
    //    starting with SP or HT that follows a field): that line belongs to
    //    the body and body_offset is its start. A message with no header at
    //    all has body_offset 0; an mbox "From " line is such a line;
    //  - at the end of the input: body_offset is message.size().
    static HeaderBlock parse(std::string_view message, size_t& body_offset);

    // Names compare case-insensitively (ASCII).
    const HeaderField* find(std::string_view name) const;  // the first, or nullptr
    std::vector<const HeaderField*> find_all(std::string_view name) const;
    bool has(std::string_view name) const;
    void remove_all(std::string_view name);

    // value is given without the leading space: the field is written as
    // "Name: value" ("Name:" if value is empty). The caller is responsible
    // for name being a valid field name and value holding no line end that
    // is not followed by SP/HT (see fold_header()).
    void append(std::string name, std::string value);
    void prepend(std::string name, std::string value);

    const std::vector<HeaderField>& fields() const { return fields_; }

    // "Name:value\n" for each field: parsed fields come back exactly as they
    // were (with LF line ends), without the empty line that ends the section.
    std::string serialize() const;

private:
    std::vector<HeaderField> fields_;
};

// True if name is a valid field name: not empty, printable ASCII 33..126
// except ':'.
bool is_field_name(std::string_view name);

// Remove every line end (LF or CRLF) that is followed by SP or HT, keeping
// the SP/HT; then trim leading and trailing SP/HT.
std::string unfold(std::string_view value);

// "Name: value\n", folded before runs of SP/HT so that lines are at most
// width characters where the words allow it (a word longer than a line
// stays whole). A continuation line starts with the original SP/HT. value is
// unfolded first (see unfold()); any CR, LF or NUL left in it becomes a space
// (and the result is trimmed again), so the result is always exactly one
// field. Never folds right after the colon. For a value with no CR, LF or
// NUL outside its folds, unfold() of the text after "Name:" equals
// unfold(value).
std::string fold_header(std::string_view name, std::string_view value, size_t width = 78);

}  // namespace yubin
