/* err.c - sl_strerror() and sl_version(): the texts for the SL_ERRORS X-macro and errno. A leaf:
 * it depends on nothing else in the library.
 */
#include <string.h>

#include "sluice.h"

#define SL_STR2(x) #x
#define SL_STR(x) SL_STR2(x)

SL_API const char *sl_version(void)
{
	return SL_STR(SL_VERSION_MAJOR) "." SL_STR(SL_VERSION_MINOR) "." SL_STR(SL_VERSION_PATCH);
}

SL_API const char *sl_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
#define SL_ERR_CASE(name, value, text)                                                        \
	case name:                                                                             \
		return text;
		SL_ERRORS(SL_ERR_CASE)
#undef SL_ERR_CASE
	default:
		break;
	}
	if (err < 0 && err > -4096)
		return strerror(-err); /* glibc's table is static and thread-safe for known codes */
	return "unknown error";
}
