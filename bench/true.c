/* The benchmark's trivial test: a static program that does nothing and
 * exits 0, so that what ci/bench times is the cost of starting a process
 * (bare, or in a container), not the test. Built by ci/bench with
 * `gcc -static -O2`. */
int main(void)
{
    return 0;
}
