/* sniff.h — what a file is, from its first bytes (never from a header the
 * client sent): JPEG, PNG, GIF, WebP, HEIC, MP4/MOV, M4A/AAC, WebM, Ogg
 * (Opus/Vorbis), MP3, WAV, PDF; anything else application/octet-stream.
 * Image width/height from the headers of the formats that carry them, and
 * the duration of Ogg/Opus streams by walking their pages as they stream
 * (sniff_ogg). Pure: no I/O, no allocation. */
#ifndef SB_SNIFF_H
#define SB_SNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sniff_info {
    const char *mime; /* static string */
    int width, height; /* 0 when unknown */
    bool opus;         /* an Ogg stream whose first packet is OpusHead */
    uint16_t pre_skip; /* Opus pre-skip, samples at 48 kHz */
} sniff_info;

/* Identifies the content from its first `len` bytes (the more the better
 * for JPEG dimensions; 64 KiB is plenty). Always fills *out. */
void sniff_detect(const uint8_t *p, size_t len, sniff_info *out);
/* True for the types served inline (images, audio and video sniff_detect
 * recognizes); false for everything else (served as attachments). */
bool sniff_inline(const char *mime);

/* Walks Ogg pages over a stream fed in pieces, remembering the granule
 * position of the last complete page of the first logical stream. */
typedef struct sniff_ogg {
    uint8_t hdr[27 + 255];
    size_t hlen;      /* header bytes gathered */
    size_t need;      /* header bytes needed (27, then 27 + segments) */
    uint64_t skip;    /* body bytes of the current page left to skip */
    uint32_t serial;
    bool have_serial;
    bool broken;      /* lost sync: no duration */
    int64_t granule;  /* last granule position seen, -1 none */
} sniff_ogg;

void sniff_ogg_init(sniff_ogg *o);
void sniff_ogg_feed(sniff_ogg *o, const uint8_t *p, size_t len);
/* Duration in ms of an Opus stream (granule at 48 kHz minus pre-skip), or
 * -1 when unknown. */
int64_t sniff_ogg_opus_ms(const sniff_ogg *o, uint16_t pre_skip);

#endif
