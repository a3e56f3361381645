/* An independent LTC encoder and decoder for the timecode tests: libltc (Debian libltc-dev),
 * not our code. Built by tests/timecode.rs with `cc ... -lltc`.
 *
 *   libltc_tool gen OUT.raw HH MM SS FF SECONDS   25 fps, 48 kHz, 8-bit unsigned mono samples
 *   libltc_tool dump IN.raw                        16-bit signed mono 48 kHz in; one label a line
 */
#include <ltc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gen(const char *path, int h, int m, int s, int f, int seconds) {
  LTCEncoder *e = ltc_encoder_create(48000, 25, LTC_TV_625_50, 0);
  SMPTETimecode st;
  memset(&st, 0, sizeof st);
  strcpy(st.timezone, "+0000");
  st.hours = h; st.mins = m; st.secs = s; st.frame = f;
  ltc_encoder_set_timecode(e, &st);
  FILE *out = fopen(path, "wb");
  if (!out) { perror(path); return 1; }
  for (int i = 0; i < seconds * 25; i++) {
    ltc_encoder_encode_frame(e);
    ltcsnd_sample_t *buf;
    int len = ltc_encoder_get_bufferptr(e, &buf, 1);
    fwrite(buf, 1, (size_t)len, out);
    ltc_encoder_inc_timecode(e);
  }
  fclose(out);
  ltc_encoder_free(e);
  return 0;
}

static int dump(const char *path) {
  FILE *in = fopen(path, "rb");
  if (!in) { perror(path); return 1; }
  LTCDecoder *d = ltc_decoder_create(48000 / 25, 64);
  short buf[1024];
  size_t n;
  ltc_off_t pos = 0;
  while ((n = fread(buf, sizeof(short), 1024, in)) > 0) {
    ltc_decoder_write_s16(d, buf, n, pos);
    pos += n;
    LTCFrameExt frame;
    while (ltc_decoder_read(d, &frame)) {
      SMPTETimecode st;
      ltc_frame_to_time(&st, &frame.ltc, 0);
      printf("%02d:%02d:%02d:%02d\n", st.hours, st.mins, st.secs, st.frame);
    }
  }
  fclose(in);
  ltc_decoder_free(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[1], "gen") == 0)
    return gen(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
  if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
  fprintf(stderr, "usage: %s gen OUT.raw HH MM SS FF SECONDS | dump IN.raw\n", argv[0]);
  return 2;
}
