// The character tokenizer for tiny tasks trained from scratch (make_char_tokenizer in
// tokenizer.hpp): each UTF-8 character of the alphabet is one id, in order, and the
// special tokens follow. encode() with parse_special matches specials in the text
// (longest first); a character outside the alphabet is an input_error naming it and
// its byte offset. decode() of an unknown id is skipped, as for BPE.
#pragma once

#include "policies/tokenizers/tokenizer.hpp"
