/* sniff.c — content type and dimensions from magic bytes (sniff.h). */
#include "media/sniff.h"

#include <string.h>

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }
static uint32_t le24(const uint8_t *p) { return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }

static void dims(sniff_info *o, uint32_t w, uint32_t h)
{
    if (w > 0 && h > 0 && w <= 1000000 && h <= 1000000) {
        o->width = (int)w;
        o->height = (int)h;
    }
}

/* JPEG: walk the marker segments to the first SOFn frame header. */
static void jpeg_dims(const uint8_t *p, size_t len, sniff_info *o)
{
    size_t i = 2;
    while (i + 4 <= len) {
        if (p[i] != 0xFF) return;
        uint8_t m = p[i + 1];
        if (m == 0xFF) { i++; continue; } /* fill byte */
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
        size_t seg = be16(p + i + 2);
        if (seg < 2) return;
        bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (i + 9 > len) return;
            dims(o, be16(p + i + 7), be16(p + i + 5));
            return;
        }
        if (m == 0xDA || m == 0xD9) return; /* image data: no frame header before it */
        i += 2 + seg;
    }
}

static bool ftyp_brand(const uint8_t *p, size_t len, const char *const *brands)
{
    if (len < 12) return false;
    size_t box = be32(p);
    if (box < 12 || box > len) box = len < 64 ? len : 64;
    for (size_t i = 8; i + 4 <= box; i += 4) {
        if (i == 12) continue; /* minor version */
        for (const char *const *b = brands; *b; b++)
            if (memcmp(p + i, *b, 4) == 0) return true;
    }
    return false;
}

/* HEIC: the first 'ispe' property (image spatial extents) in the head. */
static void heic_dims(const uint8_t *p, size_t len, sniff_info *o)
{
    for (size_t i = 4; i + 16 <= len; i++)
        if (memcmp(p + i, "ispe", 4) == 0) {
            dims(o, be32(p + i + 8), be32(p + i + 12));
            return;
        }
}

static void webp_dims(const uint8_t *p, size_t len, sniff_info *o)
{
    if (len < 30) return;
    if (!memcmp(p + 12, "VP8 ", 4) && p[23] == 0x9D && p[24] == 0x01 && p[25] == 0x2A)
        dims(o, le16(p + 26) & 0x3FFF, le16(p + 28) & 0x3FFF);
    else if (!memcmp(p + 12, "VP8L", 4) && p[20] == 0x2F) {
        uint32_t b = (uint32_t)p[21] | (uint32_t)p[22] << 8 | (uint32_t)p[23] << 16 | (uint32_t)p[24] << 24;
        dims(o, (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1);
    } else if (!memcmp(p + 12, "VP8X", 4))
        dims(o, le24(p + 24) + 1, le24(p + 27) + 1);
}

static bool mp3_frame(const uint8_t *p, size_t len)
{
    if (len < 4 || p[0] != 0xFF || (p[1] & 0xE0) != 0xE0) return false;
    int ver = (p[1] >> 3) & 3, layer = (p[1] >> 1) & 3, br = p[2] >> 4, sr = (p[2] >> 2) & 3;
    return ver != 1 && layer == 1 && br != 0 && br != 15 && sr != 3; /* layer III */
}

void sniff_detect(const uint8_t *p, size_t len, sniff_info *o)
{
    static const char *const heic[] = {"heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", NULL};
    static const char *const m4a[] = {"M4A ", "M4B ", NULL};
    static const char *const qt[] = {"qt  ", NULL};
    memset(o, 0, sizeof *o);
    o->mime = "application/octet-stream";
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) {
        o->mime = "image/jpeg";
        jpeg_dims(p, len, o);
    } else if (len >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) {
        o->mime = "image/png";
        if (len >= 24 && !memcmp(p + 12, "IHDR", 4)) dims(o, be32(p + 16), be32(p + 20));
    } else if (len >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) {
        o->mime = "image/gif";
        if (len >= 10) dims(o, le16(p + 6), le16(p + 8));
    } else if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) {
        o->mime = "image/webp";
        webp_dims(p, len, o);
    } else if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WAVE", 4)) {
        o->mime = "audio/wav";
    } else if (len >= 12 && !memcmp(p + 4, "ftyp", 4)) {
        if (ftyp_brand(p, len, heic)) {
            o->mime = "image/heic";
            heic_dims(p, len, o);
        } else if (ftyp_brand(p, len, m4a)) o->mime = "audio/mp4";
        else if (ftyp_brand(p, len, qt)) o->mime = "video/quicktime";
        else o->mime = "video/mp4";
    } else if (len >= 4 && !memcmp(p, "\x1a\x45\xdf\xa3", 4)) {
        /* EBML: WebM when its DocType says so (in the first header) */
        size_t lim = len < 64 ? len : 64;
        for (size_t i = 4; i + 4 <= lim; i++)
            if (!memcmp(p + i, "webm", 4)) {
                o->mime = "video/webm";
                break;
            }
    } else if (len >= 4 && !memcmp(p, "OggS", 4)) {
        if (len >= 28 + 8) {
            size_t nseg = p[26], body = 27 + nseg;
            if (body + 19 <= len && !memcmp(p + body, "OpusHead", 8)) {
                o->mime = "audio/ogg";
                o->opus = true;
                o->pre_skip = (uint16_t)le16(p + body + 10);
            } else if (body + 7 <= len && !memcmp(p + body, "\x01vorbis", 7)) {
                o->mime = "audio/ogg";
            }
        }
    } else if (len >= 5 && !memcmp(p, "%PDF-", 5)) {
        o->mime = "application/pdf";
    } else if (len >= 10 && !memcmp(p, "ID3", 3) && p[3] < 5) {
        o->mime = "audio/mpeg";
    } else if (mp3_frame(p, len)) {
        o->mime = "audio/mpeg";
    } else if (len >= 4 && p[0] == 0xFF && (p[1] & 0xF6) == 0xF0 && ((p[2] >> 2) & 0xF) < 13) {
        o->mime = "audio/aac"; /* ADTS */
    }
}

bool sniff_inline(const char *m)
{
    static const char *const ok[] = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic",
                                     "video/mp4", "video/quicktime", "video/webm", "audio/ogg",
                                     "audio/mpeg", "audio/mp4", "audio/aac", "audio/wav", NULL};
    for (const char *const *k = ok; *k; k++)
        if (m && !strcmp(m, *k)) return true;
    return false;
}

void sniff_ogg_init(sniff_ogg *o)
{
    memset(o, 0, sizeof *o);
    o->need = 27;
    o->granule = -1;
}

void sniff_ogg_feed(sniff_ogg *o, const uint8_t *p, size_t len)
{
    while (len && !o->broken) {
        if (o->skip) {
            size_t k = o->skip < len ? (size_t)o->skip : len;
            o->skip -= k;
            p += k;
            len -= k;
            continue;
        }
        size_t k = o->need - o->hlen;
        if (k > len) k = len;
        memcpy(o->hdr + o->hlen, p, k);
        o->hlen += k;
        p += k;
        len -= k;
        if (o->hlen < o->need) return;
        if (o->need == 27) {
            if (memcmp(o->hdr, "OggS", 4) != 0 || o->hdr[4] != 0) {
                o->broken = true;
                return;
            }
            o->need = 27 + (size_t)o->hdr[26];
            if (o->hlen < o->need) continue;
        }
        /* a whole page header: its body is skipped */
        uint64_t body = 0;
        for (size_t i = 0; i < o->hdr[26]; i++) body += o->hdr[27 + i];
        uint32_t serial = (uint32_t)o->hdr[14] | (uint32_t)o->hdr[15] << 8 | (uint32_t)o->hdr[16] << 16 |
                          (uint32_t)o->hdr[17] << 24;
        uint64_t g = 0;
        for (int i = 7; i >= 0; i--) g = g << 8 | o->hdr[6 + i];
        if (!o->have_serial) {
            o->serial = serial;
            o->have_serial = true;
        }
        if (serial == o->serial && g != UINT64_MAX && g < ((uint64_t)1 << 62)) o->granule = (int64_t)g;
        o->skip = body;
        o->hlen = 0;
        o->need = 27;
    }
}

int64_t sniff_ogg_opus_ms(const sniff_ogg *o, uint16_t pre_skip)
{
    if (o->broken || o->granule < 0 || o->hlen != 0 || o->skip != 0) return -1;
    int64_t s = o->granule - pre_skip;
    if (s < 0) s = 0;
    return s / 48000 * 1000 + s % 48000 * 1000 / 48000; /* no overflow */
}
