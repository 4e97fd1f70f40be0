#include <stdio.h>
int main(void) { puts("herald"); return 0; }
