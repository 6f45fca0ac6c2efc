/* Frozen copy of the version header of ABI 1.3 (tests/abi/README).
 * SPDX-License-Identifier: MIT */
#ifndef PROVLEDGER_VERSION_H
#define PROVLEDGER_VERSION_H

/** Major version of the headers this program was compiled against. */
#define PL_VERSION_MAJOR 0
/** Minor version. */
#define PL_VERSION_MINOR 1
/** Patch version. */
#define PL_VERSION_PATCH 0
/** The version as text, "MAJOR.MINOR.PATCH". */
#define PL_VERSION_STRING "0.1.0"
/** The version as one number, MAJOR*10000 + MINOR*100 + PATCH. */
#define PL_VERSION_NUMBER (PL_VERSION_MAJOR * 10000 + PL_VERSION_MINOR * 100 + PL_VERSION_PATCH)

#endif
