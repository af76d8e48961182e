/* test_media.c — the pure pieces of media/: content sniffing and image
 * dimensions, the Ogg page walker (Opus duration), the Range header parser
 * and the streaming multipart/form-data parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include "media/multipart.h"
#include "media/range.h"
#include "media/sniff.h"

static const char *mime_of(const void *p, size_t n)
{
    static sniff_info si;
    sniff_detect(p, n, &si);
    return si.mime;
}

static void test_sniff(void **state)
{
    (void)state;
    sniff_info si;
    const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 2, 0x80, 0, 0, 1, 0xe0};
    sniff_detect(png, sizeof png, &si);
    assert_string_equal(si.mime, "image/png");
    assert_int_equal(si.width, 640);
    assert_int_equal(si.height, 480);
    const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 10, 0, 20, 0};
    sniff_detect(gif, sizeof gif, &si);
    assert_string_equal(si.mime, "image/gif");
    assert_int_equal(si.width, 10);
    assert_int_equal(si.height, 20);
    /* JPEG: APP0 then SOF0 (height 300, width 400) */
    const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0x01, 0x2C, 0x01, 0x90, 3, 0, 0, 0};
    sniff_detect(jpg, sizeof jpg, &si);
    assert_string_equal(si.mime, "image/jpeg");
    assert_int_equal(si.width, 400);
    assert_int_equal(si.height, 300);
    assert_string_equal(mime_of("RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0\x7f\x02\0\xdf\x01\0", 30), "image/webp");
    sniff_detect((const uint8_t *)"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0\x7f\x02\0\xdf\x01\0", 30, &si);
    assert_int_equal(si.width, 640);
    assert_int_equal(si.height, 480);
    assert_string_equal(mime_of("RIFF\0\0\0\0WAVEfmt ", 16), "audio/wav");
    assert_string_equal(mime_of("\0\0\0\x18" "ftypheic\0\0\0\0mif1heic", 24), "image/heic");
    assert_string_equal(mime_of("\0\0\0\x18" "ftypisom\0\0\0\0isomavc1", 24), "video/mp4");
    assert_string_equal(mime_of("\0\0\0\x14" "ftypqt  \0\0\0\0qt  ", 20), "video/quicktime");
    assert_string_equal(mime_of("\0\0\0\x18" "ftypM4A \0\0\0\0M4A isom", 24), "audio/mp4");
    assert_string_equal(mime_of("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", 16), "video/webm");
    assert_string_equal(mime_of("ID3\x04\0\0\0\0\0\0", 10), "audio/mpeg");
    assert_string_equal(mime_of("\xff\xfb\x90\x64", 4), "audio/mpeg");
    assert_string_equal(mime_of("\xff\xf1\x50\x80", 4), "audio/aac");
    assert_string_equal(mime_of("%PDF-1.7\n", 9), "application/pdf");
    /* never from what it claims to be: markup is unknown, served as attachment */
    assert_string_equal(mime_of("<html><script>", 14), "application/octet-stream");
    assert_string_equal(mime_of("<svg xmlns=", 11), "application/octet-stream");
    assert_string_equal(mime_of("", 0), "application/octet-stream");
    assert_true(sniff_inline("image/png"));
    assert_true(sniff_inline("audio/ogg"));
    assert_false(sniff_inline("application/pdf"));
    assert_false(sniff_inline("text/html"));
    assert_false(sniff_inline("image/svg+xml"));
}

/* An Ogg page: header, one segment table, body of n bytes. */
static size_t ogg_page(uint8_t *out, uint64_t granule, const void *body, uint8_t n)
{
    memset(out, 0, 27);
    memcpy(out, "OggS", 4);
    for (int i = 0; i < 8; i++) out[6 + i] = (uint8_t)(granule >> (8 * i));
    out[14] = 7;
    out[26] = 1;
    out[27] = n;
    memcpy(out + 28, body, n);
    return 28 + (size_t)n;
}

static void test_ogg_opus(void **state)
{
    (void)state;
    uint8_t buf[1024], head[19] = "OpusHead";
    head[8] = 1;
    head[10] = 0x38; /* pre-skip 312 */
    head[11] = 0x01;
    size_t n = ogg_page(buf, 0, head, sizeof head);
    n += ogg_page(buf + n, 0, "OpusTags........", 16);
    n += ogg_page(buf + n, 312 + 48000 * 3 + 24000, "audio", 5);
    sniff_info si;
    sniff_detect(buf, n, &si);
    assert_string_equal(si.mime, "audio/ogg");
    assert_true(si.opus);
    assert_int_equal(si.pre_skip, 312);
    /* fed in awkward pieces: same answer */
    sniff_ogg o;
    sniff_ogg_init(&o);
    for (size_t i = 0; i < n; i += 3) sniff_ogg_feed(&o, buf + i, n - i < 3 ? n - i : 3);
    assert_int_equal(sniff_ogg_opus_ms(&o, si.pre_skip), 3500);
    /* a truncated last page: unknown */
    sniff_ogg_init(&o);
    sniff_ogg_feed(&o, buf, n - 2);
    assert_int_equal(sniff_ogg_opus_ms(&o, si.pre_skip), -1);
    /* lost sync: unknown */
    sniff_ogg_init(&o);
    sniff_ogg_feed(&o, (const uint8_t *)"NotOgg at all, sorry...........", 31);
    assert_int_equal(sniff_ogg_opus_ms(&o, 0), -1);
}

static void test_range(void **state)
{
    (void)state;
    range_span s[RANGE_MAX];
    int n;
    assert_int_equal(range_parse(NULL, 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=0-9", 100, s, &n), RANGE_PARTIAL);
    assert_int_equal(n, 1);
    assert_true(s[0].start == 0 && s[0].len == 10);
    assert_int_equal(range_parse("bytes=90-", 100, s, &n), RANGE_PARTIAL);
    assert_true(s[0].start == 90 && s[0].len == 10);
    assert_int_equal(range_parse("bytes=-30", 100, s, &n), RANGE_PARTIAL);
    assert_true(s[0].start == 70 && s[0].len == 30);
    assert_int_equal(range_parse("bytes=-300", 100, s, &n), RANGE_PARTIAL); /* the whole */
    assert_true(s[0].start == 0 && s[0].len == 100);
    assert_int_equal(range_parse("bytes=50-1000", 100, s, &n), RANGE_PARTIAL); /* clamped */
    assert_true(s[0].start == 50 && s[0].len == 50);
    assert_int_equal(range_parse("Bytes = 1-1 , 3-4", 100, s, &n), RANGE_PARTIAL);
    assert_int_equal(n, 2);
    assert_int_equal(range_parse("bytes=100-", 100, s, &n), RANGE_UNSATISFIABLE);
    assert_int_equal(range_parse("bytes=-0", 100, s, &n), RANGE_UNSATISFIABLE);
    assert_int_equal(range_parse("bytes=0-", 0, s, &n), RANGE_UNSATISFIABLE);
    assert_int_equal(range_parse("bytes=200-300, 5-6", 100, s, &n), RANGE_PARTIAL); /* one is enough */
    assert_int_equal(n, 1);
    assert_true(s[0].start == 5);
    /* malformed or not bytes: ignored (the whole) */
    assert_int_equal(range_parse("items=0-1", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=5-1", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=a-b", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=1-2;", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=99999999999999999999999-", 100, s, &n), RANGE_UNSATISFIABLE);
    /* overlapping, or more than RANGE_MAX: the whole */
    assert_int_equal(range_parse("bytes=0-10,5-15", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=0-10,-95", 100, s, &n), RANGE_FULL);
    assert_int_equal(range_parse("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14", 100, s, &n), RANGE_PARTIAL);
    assert_int_equal(n, 8);
    assert_int_equal(range_parse("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16", 100, s, &n), RANGE_FULL);
}

typedef struct mp_seen {
    char names[256], files[256], types[256];
    char data[4096];
    size_t dlen;
    int parts, ends;
} mp_seen;

static int mp_part(void *arg, const char *name, const char *filename, const char *ctype)
{
    mp_seen *s = arg;
    s->parts++;
    strcat(s->names, name);
    strcat(s->names, "|");
    strcat(s->files, filename);
    strcat(s->files, "|");
    strcat(s->types, ctype);
    strcat(s->types, "|");
    return 0;
}

static int mp_data(void *arg, const uint8_t *p, size_t n)
{
    mp_seen *s = arg;
    memcpy(s->data + s->dlen, p, n);
    s->dlen += n;
    return 0;
}

static int mp_end(void *arg)
{
    mp_seen *s = arg;
    s->ends++;
    s->data[s->dlen++] = '#';
    return 0;
}

static const multipart_cb CB = {mp_part, mp_data, mp_end};

static int parse_in(const char *ct, const char *body, size_t step, mp_seen *s)
{
    multipart m;
    memset(s, 0, sizeof *s);
    if (multipart_init(&m, ct, &CB, s) != 0) return -2;
    size_t len = strlen(body);
    for (size_t i = 0; i < len; i += step)
        if (multipart_feed(&m, (const uint8_t *)body + i, len - i < step ? len - i : step) != 0) return -1;
    return multipart_done(&m) ? 1 : 0;
}

static void test_multipart(void **state)
{
    (void)state;
    const char *ct = "multipart/form-data; boundary=----b0undary";
    const char *body = "preamble\r\n------b0undary\r\n"
                       "Content-Disposition: form-data; name=\"caption\"\r\n\r\n"
                       "hello\r\n"
                       "------b0undary\r\n"
                       "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\n"
                       "Content-Type: image/png\r\n\r\n"
                       "\r\n--not-it\r\n------b0undar\r\nx"
                       "\r\n------b0undary--\r\nepilogue";
    for (size_t step = 1; step <= 64; step++) {
        mp_seen s;
        assert_int_equal(parse_in(ct, body, step, &s), 1);
        assert_int_equal(s.parts, 2);
        assert_int_equal(s.ends, 2);
        assert_string_equal(s.names, "caption|file|");
        assert_string_equal(s.files, "|a \"b\".png|");
        assert_string_equal(s.types, "|image/png|");
        s.data[s.dlen] = 0;
        assert_string_equal(s.data, "hello#\r\n--not-it\r\n------b0undar\r\nx#");
    }
    mp_seen s;
    /* boundary at the very start; quoted boundary */
    assert_int_equal(parse_in("multipart/form-data; boundary=\"x y\"",
                              "--x y\r\nContent-Disposition: form-data; name=f\r\n\r\nz\r\n--x y--", 5, &s), 1);
    assert_int_equal(s.parts, 1);
    /* not finished: no closing delimiter */
    assert_int_equal(parse_in(ct, "------b0undary\r\nContent-Disposition: form-data; name=a\r\n\r\nabc", 4, &s), 0);
    /* malformed: header line without a colon, missing disposition, junk after a delimiter */
    assert_int_equal(parse_in(ct, "------b0undary\r\nnope\r\n\r\nx", 3, &s), -1);
    assert_int_equal(parse_in(ct, "------b0undary\r\nContent-Type: a/b\r\n\r\nx", 3, &s), -1);
    assert_int_equal(parse_in(ct, "------b0undaryXX\r\n", 3, &s), -1);
    /* headers too long */
    static char big[MULTIPART_HEAD_MAX + 200];
    strcpy(big, "------b0undary\r\nX: ");
    memset(big + strlen(big), 'a', MULTIPART_HEAD_MAX);
    assert_int_equal(parse_in(ct, big, 1000, &s), -1);
    /* bad Content-Types */
    assert_int_equal(parse_in("multipart/mixed; boundary=a", "", 1, &s), -2);
    assert_int_equal(parse_in("multipart/form-data", "", 1, &s), -2);
    assert_int_equal(parse_in("multipart/form-data; boundary=", "", 1, &s), -2);
    assert_int_equal(parse_in("multipart/form-data; boundary=a\x01", "", 1, &s), -2);
    char p[16];
    assert_int_equal(multipart_param("form-data; name=\"f\"; filename=x.bin", "filename", p, sizeof p), 0);
    assert_string_equal(p, "x.bin");
    assert_int_equal(multipart_param("form-data; name=\"f\"", "filename", p, sizeof p), -1);
    assert_int_equal(multipart_param("form-data; filename=\"0123456789abcdefXYZ\"", "filename", p, sizeof p), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_ogg_opus),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_multipart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
