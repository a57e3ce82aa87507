#include <stdio.h>
#include <sys/utsname.h>

/* Greets from wherever it runs: inside a banger VM that is the guest. */
int main(void) {
  struct utsname u;
  if (uname(&u) != 0) return 1;
  printf("hello from %s (kernel %s)\n", u.nodename, u.release);
  return 0;
}
