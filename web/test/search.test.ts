import { describe, expect, it } from 'vitest';
import { markParts } from '../src/ui/MessageSearch';

describe('search highlights', () => {
  it('cuts the body at code-point offsets, as the server counts them', () => {
    // The server's example: 明天 twice in 我们明天见，明天下午三点.
    expect(markParts('我们明天见，明天下午三点', [[2, 4], [6, 8]])).toEqual([
      { text: '我们', hit: false },
      { text: '明天', hit: true },
      { text: '见，', hit: false },
      { text: '明天', hit: true },
      { text: '下午三点', hit: false },
    ]);
    // An emoji is one code point but two UTF-16 units: the range after it still lands right.
    expect(markParts('👍 lunch at noon', [[2, 7]])).toEqual([
      { text: '👍 ', hit: false },
      { text: 'lunch', hit: true },
      { text: ' at noon', hit: false },
    ]);
  });

  it('ignores ranges that overlap, are empty or run past the end', () => {
    expect(markParts('abcdef', [[0, 2], [1, 3], [4, 4], [5, 9]])).toEqual([
      { text: 'ab', hit: true },
      { text: 'cdef', hit: false },
    ]);
    expect(markParts('', [])).toEqual([]);
  });
});
