/* Host -> guest load for bench/net.py (h2g): UDP datagrams to DST:PORT as fast as the host stack
 * takes them, in batches of 64 (sendmmsg), for MS milliseconds per payload size, each size in
 * turn. Run inside the benchmark's network namespace; the guest counts what arrives.
 *
 *   udp_blast DST PORT MS SIZE [SIZE...]
 *
 * Prints "sent SIZE N" per size on stdout. Compiled by bench/net.py (cc -O2). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: udp_blast DST PORT MS SIZE [SIZE...]\n");
    return 2;
  }
  struct sockaddr_in dst;
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) return 2;
  const double ms = atof(argv[3]);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return perror("socket"), 1;
  int big = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (connect(s, (struct sockaddr *)&dst, sizeof dst) != 0) return perror("connect"), 1;
  static char payload[65536];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)i;
  for (int a = 4; a < argc; a++) {
    const size_t size = (size_t)atoi(argv[a]);
    if (size == 0 || size > 65507) return 2;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = payload;
      iov[i].iov_len = size;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long sent = 0;
    const double end = now_ms() + ms;
    while (now_ms() < end) {
      int n = sendmmsg(s, msgs, BATCH, 0);
      if (n > 0) sent += (unsigned long)n;
    }
    printf("sent %zu %lu\n", size, sent);
    fflush(stdout);
    usleep(50000); /* let the last frames drain before the next size */
  }
  close(s);
  return 0;
}
