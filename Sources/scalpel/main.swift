import ScalpelKit
print("scalpel")
