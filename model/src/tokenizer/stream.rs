//! Incremental detokenization: text for a token list that grows one id at a time.
//!
//! Decoding only the newest id is wrong twice over: a byte-level BPE token can hold part of a
//! multi-byte UTF-8 character (an emoji spans up to four tokens), and sentencepiece-style decoders
//! drop the leading space of the first token they see. So, as in TGI and vLLM, the decoder keeps
//! two offsets into the id list: text is decoded from `prefix_offset` (a few tokens of context) and
//! compared with the text of the context alone; the difference is emitted only once it no longer
//! ends in U+FFFD, the replacement for an incomplete character.

use super::{Tokenizer, TokenizerError};

/// Tokens held back at most while their text ends in U+FFFD.
const MAX_HELD_BACK: usize = 8;

/// The state of one decoded stream. It holds no reference to the tokenizer, so one tokenizer can
/// serve many streams (one per sequence in a batch).
#[derive(Debug, Clone, Default)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    /// Start of the context window decoded together with the new tokens.
    prefix_offset: usize,
    /// End of the ids whose text has been emitted.
    read_offset: usize,
    /// Everything emitted so far.
    text: String,
    skip_special_tokens: bool,
}

impl IncrementalDecoder {
    /// A decoder with no tokens yet.
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            ..Self::default()
        }
    }

    /// Appends `id` and returns the text it completes, which is empty while the id ends inside
    /// a multi-byte character (or is a skipped special token).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<&str, TokenizerError> {
        self.ids.push(id);
        let window = &self.ids[self.prefix_offset..];
        let context_len = self.read_offset - self.prefix_offset;
        let prefix_text = tokenizer.decode(&window[..context_len], self.skip_special_tokens)?;
        let new_text = tokenizer.decode(window, self.skip_special_tokens)?;
        let start = self.text.len();
        // An incomplete character is at most 3 bytes, so at most 3 tokens; past that the U+FFFD is
        // the model's own invalid bytes, and holding back longer would only grow the window.
        let held_back = self.ids.len() - self.read_offset;
        let complete = !new_text.ends_with('\u{FFFD}') || held_back > MAX_HELD_BACK;
        if new_text.len() > prefix_text.len() && complete {
            // The context decodes to a prefix of the longer window for every decoder in use; if
            // a decoder ever rewrote it, wait for more tokens rather than emit a broken slice.
            if let Some(delta) = new_text.strip_prefix(prefix_text.as_str()) {
                self.text.push_str(delta);
                self.prefix_offset = self.read_offset;
                self.read_offset = self.ids.len();
            }
        }
        Ok(&self.text[start..])
    }

    /// Emits whatever is still held back (an incomplete character becomes U+FFFD) and returns it.
    /// Call this when the sequence ends.
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<&str, TokenizerError> {
        let start = self.text.len();
        if self.read_offset < self.ids.len() {
            let window = &self.ids[self.prefix_offset..];
            let context_len = self.read_offset - self.prefix_offset;
            let prefix_text = tokenizer.decode(&window[..context_len], self.skip_special_tokens)?;
            let new_text = tokenizer.decode(window, self.skip_special_tokens)?;
            if let Some(delta) = new_text.strip_prefix(prefix_text.as_str()) {
                self.text.push_str(delta);
            }
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
        }
        Ok(&self.text[start..])
    }

    /// All text emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
